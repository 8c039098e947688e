"""The run's settings and parameters, typed once with pydantic.

`Settings` is read from the environment (`ALLOCATION_*`), so a deployment, a shell and a test set
the same knobs the same way. `RunParameters` is what one night runs with: the same settings (one
declaration, one default, one description each), where a value the CLI or the Prefect UI passed
wins over the environment, plus the business date and dry run. Beside them: the DuckDB memory
limit (`duckdb_limits`), the analysts' storage version (`storage_version`), and the layout of
the working state's folder (`state_folder`).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from allocation.settings.duckdb_limits import (
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DuckDBLimits,
    parse_memory_limit,
)
from allocation.settings.state_folder import StateFolder, real_warehouse_path
from allocation.settings.storage_version import DEFAULT_STORAGE_VERSION, parse_storage_version

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Where a night's allocation runs: here, or as shard tasks on a Dask cluster.
TaskRunnerName = Literal["local", "dask"]
#: The checkout's `data/` folder: where a run from the Prefect UI may read and write by default.
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2] / "data"


class ParameterError(ValueError):
    """A run parameter a person must correct; the message says how."""


def parse_business_date(text: str | dt.date) -> dt.date:
    """Reads a `YYYY-MM-DD` business date, refusing anything looser (no times, no other formats)."""
    if isinstance(text, dt.date):
        return text
    value = text.strip()
    if not ISO_DATE.match(value):
        raise ParameterError(
            f"business_date {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-26"
        )
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ParameterError(
            f"business_date {text!r} is not a real calendar date: use YYYY-MM-DD, e.g. 2026-11-26"
        ) from None


class Settings(BaseSettings):
    """Defaults for every run; each one can be set as `ALLOCATION_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ALLOCATION_", extra="ignore")

    inbox: Path = Field(Path("data/inbox"), description="Folder with batches/ and orders/ files.")
    # Five minutes: uploads that write in place (cp, FTP) move the modification time with every
    # write, and a transfer quiet that long has finished or died; a file finished in the five
    # minutes before the night is taken by the next run, and reported as waiting until then.
    inbox_settle_seconds: float = Field(
        300.0,
        ge=0,
        description="A file in the inbox is read once unchanged for this long (seconds); one "
        "changed more recently is still being written and is left for the next run (0: read "
        "every file, however recent).",
    )
    warehouse: Path = Field(
        Path("data/warehouse.duckdb"), description="The analysts' DuckDB file (published copy)."
    )
    outbox: Path = Field(Path("data/outbox"), description="Folder for the nightly report folders.")
    lock_timeout_seconds: float = Field(
        120.0, ge=0, description="How long a run waits for another run on the same warehouse."
    )
    keep_published: int = Field(7, ge=1, description="Published nights kept for rollback.")
    order_retry_seconds: float = Field(
        120.0,
        gt=0,
        description="Deployment runs: how soon a night that waits for an earlier night (or for "
        "the warehouse lock) tries again, after giving its concurrency slot back.",
    )
    order_max_wait_seconds: float = Field(
        6 * 3600.0,
        ge=0,
        description="Deployment runs: how long a night may keep waiting for an earlier night "
        "(or the warehouse lock) before it fails, saying what to run first.",
    )
    workers: int = Field(
        0,
        ge=0,
        description="Processes that allocate skus in parallel, the run's own included (0 = one "
        "per CPU core). A night under 500,000 lines stays in one process either way.",
    )
    task_runner: TaskRunnerName = Field(
        "local",
        description="Where sku shards are allocated: local (this process and `workers`) or dask.",
    )
    dask_address: str = Field(
        "",
        description="Dask scheduler address (tcp://host:8786); empty: a temporary local cluster.",
    )
    dask_workers: int = Field(
        2, ge=1, description="Worker processes of the temporary local Dask cluster."
    )
    staging: str = Field(
        "",
        description="Folder or fsspec URL for the Dask shards' Parquet files; empty: "
        "<state dir>/staging. Every Dask worker must reach it.",
    )
    data_roots: str = Field(
        str(DEFAULT_DATA_ROOT),
        description="Folders, separated by ':', that every path given to a flow run (inbox, "
        "warehouse, outbox, staging) must lie in, symlinks followed. The CLI is not confined.",
    )

    alert_webhook_url: str = Field(
        "",
        description="Webhook (http or https URL) that `make deploy` points the alert automations "
        "at: a night Failed or Crashed, or not running 30 minutes after its time. Empty: no alerts.",
    )

    checks: str = Field(
        "",
        description="Levels and thresholds of the night's checks, changed from their defaults: "
        "comma-separated NAME=LEVEL[:THRESHOLD] (levels warn, stop, off), e.g. "
        "files_rejected=warn,order_volume=stop:3. README lists the checks.",
    )
    empty_night_ok: bool = Field(
        False,
        description="A night without order files or new order lines is normal (the checks "
        "order_files and new_order_lines are skipped).",
    )
    check_min_history: int = Field(
        5,
        ge=1,
        description="Committed nights needed before the order_volume check compares a night "
        "with the median of the last 14.",
    )

    @property
    def data_root_paths(self) -> tuple[Path, ...]:
        """`data_roots` as resolved absolute folders (relative ones: from the working dir)."""
        parts = [part.strip() for part in self.data_roots.split(":")]
        return tuple(Path(part).expanduser().resolve() for part in parts if part)

    warehouse_storage_version: str = Field(
        DEFAULT_STORAGE_VERSION,
        description="DuckDB storage version of the published warehouse: DuckDB clients of that "
        "version and newer open it (v1.1.0, the default, is the oldest the warehouse allows); "
        "latest for the newest format, pipeline to publish the working file byte for byte "
        "(DuckDB 2.x clients only). The working state is created in it too, so publishing is a "
        "byte copy; a working state in another version is converted once.",
    )

    duckdb_memory_limit: str = Field(
        DEFAULT_DUCKDB_MEMORY_LIMIT,
        description="Memory DuckDB may use for a night (e.g. 512MB, 1GB); past it DuckDB spills "
        "to disk in duckdb_temp_directory instead of growing.",
    )
    duckdb_temp_directory: Path | None = Field(
        None,
        description="Folder DuckDB spills to past duckdb_memory_limit; empty: duckdb-tmp/ in the "
        "pipeline's state folder beside the warehouse.",
    )

    @field_validator("dask_address", "staging", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("task_runner", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("duckdb_temp_directory", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _known_memory_limit(cls, value: str) -> str:
        return parse_memory_limit(value)

    @field_validator("warehouse_storage_version")
    @classmethod
    def _known_storage_version(cls, value: str) -> str:
        try:
            return parse_storage_version(value)
        except ValueError as error:
            raise ValueError(str(error)) from None

    def __init__(self, **values: Any) -> None:
        """Reads the environment; a bad value is a ``ParameterError`` naming the variable (or,
        for a value given here, the parameter), the value and what is allowed (one line, no
        traceback), not pydantic's report."""
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ParameterError(_settings_problem(error, given=set(values))) from None


def _settings_problem(error: ValidationError, given: set[str]) -> str:
    problems = []
    from_environment = False
    for detail in error.errors():
        field = str(detail["loc"][0]) if detail["loc"] else ""
        if field in given:
            name, shown = field, f"{field} {detail['input']!r}"
        else:
            name = f"ALLOCATION_{field.upper()}"
            shown = f"{name}={detail['input']!r}"
            from_environment = True
        info = RunParameters.model_fields.get(field)
        meaning = f" ({info.description.rstrip('.')})" if info and info.description else ""
        if detail["type"] == "value_error":  # our own validators' words, whole
            words = str(detail["ctx"]["error"])
            problems.append(words if words.startswith(field) else f"{name}: {words}")
            continue
        allowed = detail["msg"].removeprefix("Input should be ").removeprefix("input should be ")
        problems.append(f"{shown} is not allowed: it should be {allowed}{meaning}")
    return "; ".join(problems) + (". Fix or unset it." if from_environment else ".")


class _SettingsFromEnvironment(EnvSettingsSource):
    """The `ALLOCATION_*` variables of the settings only: a night's business date and dry run
    come from whoever starts it, never from the environment."""

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in super().__call__().items() if k in Settings.model_fields}


def _given(value: object) -> bool:
    """What a caller passes as 'not given': None or empty text (the CLI's and the UI's blanks)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


class RunParameters(Settings):
    """Everything one night runs with: the settings, each one given by the caller (the CLI, the
    Prefect UI, a test) or else read from the environment or else its default, plus the night's
    business date and dry run. Frozen, so it travels to Prefect tasks and Dask workers as it is
    (a pickled copy does not read the environment again). Paths are resolved so logs and
    reports name real places."""

    model_config = SettingsConfigDict(frozen=True)

    business_date: Annotated[dt.date, BeforeValidator(parse_business_date)]  # or str
    dry_run: bool = False
    #: Checks this run accepts (names, or `all`): their failures are kept, the night commits.
    accept_checks: tuple[str, ...] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The caller's values over the environment's over the defaults."""
        return init_settings, _SettingsFromEnvironment(settings_cls)

    @field_validator("inbox", "outbox")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("warehouse")
    @classmethod
    def _real(cls, value: Path) -> Path:
        """The warehouse's real path (symlinks and `..` resolved): one warehouse, however its
        path is spelled, has one state folder, one lock and one place in the date order."""
        return real_warehouse_path(value)

    @classmethod
    def build(
        cls,
        *,
        business_date: str | dt.date,
        dry_run: bool = False,
        inbox: str | Path | None = None,
        warehouse: str | Path | None = None,
        outbox: str | Path | None = None,
        task_runner: str | None = None,
        dask_address: str | None = None,
        dask_workers: int | None = None,
        staging: str | None = None,
        accept_checks: str | tuple[str, ...] | list[str] | None = None,
        **settings: Any,
    ) -> RunParameters:
        """The night's parameters from what a caller passed, the rest from the environment or the
        defaults. Empty text and 0 `dask_workers` (the UI's and the CLI's blanks) mean 'not given':
        the setting applies. `accept_checks`: names of checks this run accepts (a list, or
        comma-separated text). `settings` names any other setting (e.g. `keep_published=30`)."""
        unknown = sorted(set(settings) - set(Settings.model_fields))
        if unknown:
            raise TypeError(f"RunParameters.build() got unknown settings {', '.join(unknown)}")
        given: dict[str, Any] = {
            "inbox": inbox,
            "warehouse": warehouse,
            "outbox": outbox,
            "task_runner": task_runner,
            "dask_address": dask_address,
            "dask_workers": dask_workers or None,
            "staging": staging,
            **settings,
        }
        if isinstance(accept_checks, str):
            accept_checks = accept_checks.split(",")
        return cls(
            business_date=parse_business_date(business_date),
            dry_run=dry_run,
            accept_checks=tuple(
                name.strip().lower() for name in accept_checks or () if name.strip()
            ),
            **{name: value for name, value in given.items() if _given(value)},
        )

    @property
    def state_folder(self) -> StateFolder:
        """Where the pipeline keeps its working state, beside (never inside) the analysts' file."""
        return StateFolder.beside(self.warehouse)

    @property
    def state_dir(self) -> Path:
        """The state folder itself (`state_folder.root`)."""
        return self.state_folder.root

    @property
    def duckdb_limits(self) -> DuckDBLimits:
        """The memory and spill folder of every DuckDB connection this night opens."""
        folder = self.duckdb_temp_directory or self.state_folder.duckdb_temp
        return DuckDBLimits(self.duckdb_memory_limit, folder.expanduser().absolute())
