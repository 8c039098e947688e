"""The run's settings and parameters, typed once with pydantic.

`Settings` is read from the environment (`ALLOCATION_*`), so a deployment, a shell and a test set
the same knobs the same way. `RunParameters` is what one night runs with: the same settings (one
declaration, one default, one description each), where a value the CLI or the Prefect UI passed
wins over the environment, plus the business date and dry run.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Where a night's allocation runs: here, or as shard tasks on a Dask cluster.
TaskRunnerName = Literal["local", "dask"]
#: The checkout's `data/` folder: where a run from the Prefect UI may read and write by default.
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[1] / "data"


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


# The analysts' file: DuckDB 1.0 and older cannot read the warehouse's primary-key indexes when
# written in their storage versions, so v1.1.0 (DuckDB 1.1.0 and newer) is the oldest that holds it.
DEFAULT_STORAGE_VERSION = "v1.1.0"
OLDEST_STORAGE_VERSION = (1, 1, 0)
# Publishes the working file byte for byte: the pipeline's own format, fastest, DuckDB 2.x only.
BYTE_COPY = "pipeline"
NEWEST = "latest"
STORAGE_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


def working_storage_version(published: str) -> str | None:
    """The storage version a new working state is created in: the analysts' one, so that
    publishing it is a byte copy; None (DuckDB's newest) for `pipeline`."""
    return None if published == BYTE_COPY else published


#: DuckDB's own memory for one night (its buffer pool: hash tables, sorts, temporary tables); past
#: it DuckDB spills to `temp_directory` on disk instead of growing.
# 384MB leaves room for the allocator's processes beside DuckDB (docs/scaling.md): on the 10M
# Zipf night the tree peaked at 1,259 MiB against 1,361 at 512MB and 1,138 at 256MB, the time
# within the machine's noise; 1GB measured the same time as 512MB and ~0.45 GB more.
DEFAULT_DUCKDB_MEMORY_LIMIT = "384MB"
DUCKDB_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class DuckDBLimits:
    """What every DuckDB connection of a night may use: `memory_limit` (DuckDB's size syntax,
    e.g. 512MB or 1GB) and the folder it spills to past it."""

    memory_limit: str
    temp_directory: Path

    def config(self) -> dict[str, str | bool | int | float | list[str]]:
        """The `duckdb.connect(config=...)` entries."""
        return {"memory_limit": self.memory_limit, "temp_directory": str(self.temp_directory)}


#: The smallest memory limit accepted. Measured on DuckDB 2.0.1: a night of 300,000 order lines
#: ran out of memory at 32MB and ran at 64MB; a two-line night failed at 2MB, and at 1MB DuckDB
#: died with a FatalException in its checkpoint. A bigger night may need more: running out names
#: the setting to raise (`allocation.service.night.naming_memory_limit`).
SMALLEST_DUCKDB_MEMORY_LIMIT = "64MB"
_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def memory_size_bytes(text: str) -> float:
    """Bytes in a DuckDB size (`KB` is 1000 bytes, `KiB` 1024, as DuckDB reads them)."""
    match = _SIZE_PARTS.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a memory size")
    return float(match.group(1)) * _UNITS[match.group(2).upper()]


_SIZE_PARTS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")


def parse_memory_limit(text: str) -> str:
    """A DuckDB size such as `512MB` or `1GB`, at least `SMALLEST_DUCKDB_MEMORY_LIMIT`;
    anything else raises ValueError saying why."""
    if not DUCKDB_SIZE.match(text):
        raise ValueError(
            f"{text!r} is not a memory size DuckDB takes: use a number and a unit, such as "
            f"{DEFAULT_DUCKDB_MEMORY_LIMIT} or 1GB"
        )
    if memory_size_bytes(text) < memory_size_bytes(SMALLEST_DUCKDB_MEMORY_LIMIT):
        raise ValueError(
            f"{text.strip()!r} is too small for a night: DuckDB needs at least "
            f"{SMALLEST_DUCKDB_MEMORY_LIMIT} (the default is {DEFAULT_DUCKDB_MEMORY_LIMIT})"
        )
    return text.strip()


def parse_storage_version(text: str) -> str:
    """`v1.1.0` (or newer), `latest` or `pipeline`; anything else raises ValueError saying why."""
    value = text.strip().lower()
    if value in (BYTE_COPY, NEWEST):
        return value
    match = STORAGE_VERSION.match(value)
    if not match:
        raise ValueError(
            f"{text!r} is not a DuckDB storage version: use vMAJOR.MINOR.PATCH such as "
            f"{DEFAULT_STORAGE_VERSION} (the default), {NEWEST} or {BYTE_COPY}"
        )
    if tuple(int(part) for part in match.groups()) < OLDEST_STORAGE_VERSION:
        raise ValueError(
            f"{text!r} is older than the warehouse allows: DuckDB before 1.1 cannot read its "
            f"primary keys, so such a file would not open; use {DEFAULT_STORAGE_VERSION} or newer"
        )
    if not _duckdb_knows(value):
        raise ValueError(
            f"{text!r} is not a storage version DuckDB {duckdb.__version__} knows: use a released "
            f"version such as {DEFAULT_STORAGE_VERSION}, or {NEWEST}"
        )
    return value


@functools.cache
def _duckdb_knows(storage_version: str) -> bool:
    """Whether this process's DuckDB can write `storage_version`. Asked once per version and
    process: the settings are read at every step, and each probe opens a DuckDB database."""
    probe = duckdb.connect(":memory:")
    try:
        probe.execute("ATTACH ':memory:' AS probe (STORAGE_VERSION ?)", [storage_version])
    except duckdb.InvalidInputException:
        return False
    finally:
        probe.close()
    return True


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
    def state_dir(self) -> Path:
        """Where the pipeline keeps its working state, beside (never inside) the analysts' file."""
        return state_dir_for(self.warehouse)

    @property
    def published_dir(self) -> Path:
        """Where the copies of the published nights are kept (`published_dir_for`)."""
        return published_dir_for(self.state_dir)

    @property
    def duckdb_limits(self) -> DuckDBLimits:
        """The memory and spill folder of every DuckDB connection this night opens."""
        folder = self.duckdb_temp_directory or self.state_dir / "duckdb-tmp"
        return DuckDBLimits(self.duckdb_memory_limit, folder.expanduser().absolute())


def real_warehouse_path(warehouse: Path) -> Path:
    """`warehouse` absolute, with every symlink and `..` resolved (the file need not exist)."""
    return warehouse.expanduser().absolute().resolve()


def same_warehouse_path(a: Path, b: Path) -> bool:
    """Whether two spellings of a warehouse path name one warehouse: the same real path, or
    state folders that are one folder (the same device and inode, e.g. through a bind mount)."""
    real_a, real_b = real_warehouse_path(a), real_warehouse_path(b)
    if real_a == real_b:
        return True
    try:
        return os.path.samefile(state_dir_for(real_a), state_dir_for(real_b))
    except OSError:
        return False


def state_dir_for(warehouse: Path) -> Path:
    """`data/warehouse.duckdb` -> `data/.warehouse.duckdb.pipeline/`: hidden, so analysts' tools
    pointed at the warehouse never open the working copy and block a night."""
    return warehouse.parent / f".{warehouse.name}.pipeline"


def published_dir_for(state_dir: Path) -> Path:
    """The state folder's `published/`: a copy of each night as it was published, the sources
    of `allocation rollback` (`allocation.io.publish.keep_copy`)."""
    return state_dir / "published"
