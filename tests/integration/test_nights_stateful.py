"""Random sequences of nights against a small reference model of the rules (README "The rules").

Hypothesis drives a real inbox, warehouse and outbox through new orders, manifest changes (qty
up, down, to 0, eta moves), manifests re-delivered or grown by appended rows, reruns of the last
date, refused earlier dates and rollbacks. After every night the analysts' warehouse must hold
exactly what the model says: which batch each line is in, each batch's quantity, eta and
allocation. Nights run through `night.run_night` (no Prefect).

The model is written from the rules, not from the code:
- manifests apply in file-name order, rows in order, before allocating; a row its file name
  already delivered (same values, as many times) changes nothing; a new qty below what is
  allocated releases lines, newest arrival first;
- every open line is then tried in arrival order: the first batch of its sku that can take it
  whole, in stock first, then earliest eta, ties by reference;
- an order line (orderid, sku) seen before is a duplicate or, with another qty, rejected.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
)

from allocation.io import readers
from allocation.service.night import run_night
from allocation.service.rollback import NoKeptCopyError, rollback
from allocation.settings import ParameterError, RunParameters
from old_releases import HISTORY, install

SKUS = {"A": "LAMP", "B": "LAMP", "C": "CLOCK"}  # batch reference -> its sku
FIRST_NIGHT = dt.date(2026, 11, 25)
ETAS = [None, dt.date(2026, 12, 1), dt.date(2026, 12, 3), dt.date(2026, 12, 8)]

ManifestRow = tuple[str, str, int, dt.date | None]  # reference, sku, qty, eta
OrderRow = tuple[str, str, int]  # orderid, sku, qty

manifest_rows = st.lists(
    st.tuples(st.sampled_from(sorted(SKUS)), st.integers(0, 6), st.sampled_from(ETAS)).map(
        lambda r: (r[0], SKUS[r[0]], r[1], r[2])
    ),
    min_size=1,
    max_size=4,
)
order_rows = st.lists(
    st.tuples(
        st.sampled_from(["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"]),
        st.sampled_from(["LAMP", "CLOCK"]),
        st.integers(1, 4),
    ),
    min_size=1,
    max_size=3,
)

InboxChange = tuple[str, int, list[OrderRow], list[ManifestRow]]
# What reaches the inbox before a night: new files, a file grown or re-delivered, or it is emptied.
inbox_changes = st.tuples(
    st.sampled_from(["none", "orders", "manifest", "both", "grow", "redeliver", "clear"]),
    st.integers(0, 50),
    order_rows,
    manifest_rows,
)


@dataclass
class Model:
    """What the warehouse must hold after the committed nights so far."""

    batches: dict[str, list[object]] = field(default_factory=dict)  # ref -> [sku, qty, eta]
    lines: dict[tuple[str, str], list[object]] = field(default_factory=dict)  # -> [qty, seq, ref]
    received: dict[str, Counter[ManifestRow]] = field(default_factory=dict)  # file -> rows
    changes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (ref, change) -> times
    next_seq: int = 1
    last_night: dt.date | None = None

    def night(
        self,
        day: dt.date,
        manifests: dict[str, list[ManifestRow]],
        orders: dict[str, list[OrderRow]],
    ) -> None:
        for name in sorted(manifests):
            seen: Counter[ManifestRow] = Counter()
            delivered = self.received.setdefault(name, Counter())
            for row in manifests[name]:
                seen[row] += 1
                if seen[row] <= delivered[row]:
                    continue  # this file delivered it before
                delivered[row] += 1
                self._apply(row)
        for name in sorted(orders):
            for orderid, sku, qty in orders[name]:
                if (orderid, sku) not in self.lines:
                    self.lines[(orderid, sku)] = [qty, self.next_seq, None]
                    self.next_seq += 1
        self._allocate()
        self.last_night = max(day, self.last_night or day)

    def _apply(self, row: ManifestRow) -> None:
        reference, sku, qty, eta = row
        if reference not in self.batches:
            self.batches[reference] = [sku, qty, eta]
            return
        batch = self.batches[reference]
        if batch[2] != eta:
            self.changes[(reference, "eta")] += 1
        if batch[1] != qty:
            old = int(str(batch[1]))
            kind = "cancelled" if qty == 0 else "qty_up" if qty > old else "qty_down"
            self.changes[(reference, kind)] += 1
        batch[1], batch[2] = qty, eta
        held = sorted(
            (line for line in self.lines.values() if line[2] == reference),
            key=lambda line: int(str(line[1])),
        )
        while sum(int(str(line[0])) for line in held) > qty:
            held.pop()[2] = None  # the newest arrival goes back to open

    def _allocate(self) -> None:
        open_lines = sorted(
            ((key, line) for key, line in self.lines.items() if line[2] is None),
            key=lambda item: int(str(item[1][1])),
        )
        for (_, sku), line in open_lines:
            qty = int(str(line[0]))
            candidates = sorted(
                (ref for ref, batch in self.batches.items() if batch[0] == sku),
                key=lambda ref: (
                    self.batches[ref][2] is not None,
                    self.batches[ref][2] or dt.date.min,
                    ref,
                ),
            )
            for ref in candidates:
                if self.available(ref) >= qty:
                    line[2] = ref
                    break

    def allocated(self, reference: str) -> int:
        return sum(int(str(line[0])) for line in self.lines.values() if line[2] == reference)

    def available(self, reference: str) -> int:
        return int(str(self.batches[reference][1])) - self.allocated(reference)


def _manifest_row(text: str) -> ManifestRow:
    reference, sku, qty, eta = text.split(",")
    return reference, sku, int(qty), dt.date.fromisoformat(eta) if eta else None


def _order_row(text: str) -> OrderRow:
    orderid, sku, qty = text.split(",")
    return orderid, sku, int(qty)


class Nights(RuleBasedStateMachine):
    # Some examples start from a warehouse an older release made (schema 2 or 3, built by its
    # own code: tests/old_releases), so every rule also runs across the upgrade.
    @initialize(release=st.sampled_from([None, None, 2, 3]))
    def start(self, release: int | None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="nights-"))
        self.inbox = self.root / "inbox"
        (self.inbox / "batches").mkdir(parents=True)
        (self.inbox / "orders").mkdir(parents=True)
        self.model = Model()
        self.kept: dict[dt.date, Model] = {}  # the model after each night's latest run
        self.files = 0
        # Every file delivered so far, by name, with its latest content.
        self.delivered: dict[str, tuple[str, list[ManifestRow] | list[OrderRow]]] = {}
        self.nights_here = 0  # nights this example ran (an old release's do not count)
        if release is not None:
            self.start_from_release(release)

    def start_from_release(self, release: int) -> None:
        """The old release's nights are history: the model replays them (they follow the same
        rules), and their files may be re-sent, grown or not, under the same names."""
        install(release, self.root / ".warehouse.duckdb.pipeline" / "state.duckdb")
        for day, files in HISTORY:
            manifests = {
                name: [_manifest_row(row) for row in rows]
                for name, rows in files.items()
                if name.startswith("batches/")
            }
            orders = {
                name: [_order_row(row) for row in rows]
                for name, rows in files.items()
                if name.startswith("orders/")
            }
            self.model.night(day, manifests, orders)
            self.delivered.update({name: ("batches", rows) for name, rows in manifests.items()})
            self.delivered.update({name: ("orders", rows) for name, rows in orders.items()})

    def teardown(self) -> None:
        if hasattr(self, "root"):
            shutil.rmtree(self.root, ignore_errors=True)

    # -- the inbox ----------------------------------------------------------------------------
    def _write(self, kind: str, name: str, rows: list[ManifestRow] | list[OrderRow]) -> None:
        if kind == "batches":
            header = "reference,sku,qty,eta"
            text = [f"{r},{s},{q},{e.isoformat() if e else ''}" for r, s, q, e in rows]
        else:
            header = "orderid,sku,qty"
            text = [f"{o},{s},{q}" for o, s, q in rows]
        (self.inbox / kind / name).write_text("\n".join([header, *text]) + "\n")
        self.delivered[f"{kind}/{name}"] = (kind, rows)

    def _next_name(self) -> str:
        self.files += 1
        return f"f{self.files:03d}.csv"

    def new_orders(self, rows: list[OrderRow]) -> None:
        self._write("orders", self._next_name(), rows)

    def manifest_change(self, rows: list[ManifestRow]) -> None:
        self._write("batches", self._next_name(), rows)

    def manifest_grows(self, pick: int, rows: list[ManifestRow]) -> None:
        """A supplier re-sends a manifest under its name with rows appended."""
        names = sorted(n for n, (k, _) in self.delivered.items() if k == "batches")
        if names:
            name = names[pick % len(names)]
            earlier = self.delivered[name][1]
            self._write("batches", name.split("/", 1)[1], [*earlier, *rows])

    def redeliver(self, pick: int) -> None:
        """A file delivered before comes again, the same name and bytes."""
        if self.delivered:
            name = sorted(self.delivered)[pick % len(self.delivered)]
            kind, rows = self.delivered[name]
            self._write(kind, name.split("/", 1)[1], rows)

    def clear_inbox(self) -> None:
        for path in [*self.inbox.glob("orders/*"), *self.inbox.glob("batches/*")]:
            path.unlink()

    def _deliver(self, inbox: tuple[str, int, list[OrderRow], list[ManifestRow]]) -> None:
        what, pick, orders, manifest = inbox
        if what == "clear":
            self.clear_inbox()
        elif what == "redeliver":
            self.redeliver(pick)
        elif what == "grow":
            self.manifest_grows(pick, manifest)
        if what in ("orders", "both"):
            self.new_orders(orders)
        if what in ("manifest", "both"):
            self.manifest_change(manifest)

    # -- nights -------------------------------------------------------------------------------
    def _params(self, day: dt.date) -> RunParameters:
        return RunParameters.build(
            inbox=self.inbox,
            warehouse=self.root / "warehouse.duckdb",
            outbox=self.root / "outbox",
            business_date=day,
            keep_published=1000,  # every night can be rolled back to
            # Random nights are not ordinary ones: every check would fire at random; they are
            # evaluated and kept, never stop (tests/integration/test_night_checks.py for those).
            accept_checks="all",
        )

    def _inbox_now(self) -> tuple[dict[str, list[ManifestRow]], dict[str, list[OrderRow]]]:
        manifests: dict[str, list[ManifestRow]] = {}
        orders: dict[str, list[OrderRow]] = {}
        for name, (kind, rows) in self.delivered.items():
            if (self.inbox / name).exists():
                if kind == "batches":
                    manifests[name] = rows
                else:
                    orders[name] = rows
        return manifests, orders

    def _run(self, day: dt.date) -> None:
        run_night(self._params(day))
        self.nights_here += 1
        self.model.night(day, *self._inbox_now())
        self.kept[day] = copy.deepcopy(self.model)
        self._check()

    @rule(gap=st.integers(1, 2), inbox=inbox_changes)
    def next_night(self, gap: int, inbox: InboxChange) -> None:
        """The usual night: the inbox as it is, with what came (or went) since the last one."""
        self._deliver(inbox)
        last = self.model.last_night
        self._run(last + dt.timedelta(days=gap) if last else FIRST_NIGHT)

    @rule(gap=st.integers(1, 2), inbox=inbox_changes)
    def another_night(self, gap: int, inbox: InboxChange) -> None:
        """The same again: most steps of a sequence are nights."""
        self.next_night(gap, inbox)

    @rule(
        gap=st.integers(1, 2),
        inbox=inbox_changes,
        pick=st.integers(0, 50),
        cut=st.integers(0, 400),
    )
    def night_reads_a_file_being_rewritten(
        self, gap: int, inbox: InboxChange, pick: int, cut: int
    ) -> None:
        """A supplier rewrites a file in place (``cp``, FTP) just after the night has listed and
        hashed the inbox: the night reads it cut at some byte, and it is complete again by the
        next night. The night takes the file's whole lines (a cut last line is never a value)
        and nothing of the rest may be lost for good: the next night reads the complete file."""
        self._deliver(inbox)
        last = self.model.last_night
        day = last + dt.timedelta(days=gap) if last else FIRST_NIGHT
        present = sorted(name for name in self.delivered if (self.inbox / name).exists())
        if not present:
            self._run(day)
            return
        name = present[pick % len(present)]
        path = self.inbox / name
        complete = path.read_bytes()
        partial = complete[: cut % (len(complete) + 1)]
        listed = readers.list_inbox

        def listing_then_rewrite(inbox: Path, settle_seconds: float) -> readers.InboxListing:
            found = listed(inbox, settle_seconds)
            path.write_bytes(partial)
            return found

        readers.list_inbox = listing_then_rewrite  # type: ignore[assignment]
        try:
            run_night(self._params(day))
        finally:
            readers.list_inbox = listed
            path.write_bytes(complete)
        manifests, orders = self._inbox_now()
        whole_rows = max(0, partial.count(b"\n") - 1)  # the header's line break is the first
        if name in manifests:
            manifests[name] = manifests[name][:whole_rows]
        else:
            orders[name] = orders[name][:whole_rows]
        self.model.night(day, manifests, orders)
        self.kept[day] = copy.deepcopy(self.model)
        self._check()

    @precondition(lambda self: self.model.last_night is not None)
    @rule(inbox=inbox_changes)
    def rerun_last_night(self, inbox: InboxChange) -> None:
        """The last committed date again, with or without new files (allowed either way)."""
        assert self.model.last_night is not None
        self._deliver(inbox)
        self._run(self.model.last_night)

    @precondition(lambda self: self.model.last_night is not None)
    @rule(back=st.integers(1, 3))
    def earlier_night_is_refused(self, back: int) -> None:
        assert self.model.last_night is not None
        with pytest.raises(ParameterError, match="earlier than the last committed night"):
            run_night(self._params(self.model.last_night - dt.timedelta(days=back)))
        self._check()

    @precondition(lambda self: bool(self.kept))
    @rule(data=st.data())
    def roll_back(self, data: st.DataObject) -> None:
        day = data.draw(st.sampled_from(sorted(self.kept)))
        rollback(self._params(day))
        self.model = copy.deepcopy(self.kept[day])
        self._check()

    @precondition(lambda self: self.model.last_night is not None)
    @rule()
    def rollback_to_a_night_never_run(self) -> None:
        never = FIRST_NIGHT - dt.timedelta(days=1)
        with pytest.raises(NoKeptCopyError, match="nights kept: "):
            rollback(self._params(never))
        self._check()

    # -- what the warehouse must hold ---------------------------------------------------------
    def _check(self) -> None:
        warehouse = self.root / "warehouse.duckdb"
        if not warehouse.exists():
            assert self.nights_here == 0
            return
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            lines = {
                (o, s): (q, b)
                for o, s, q, b in con.sql(
                    "SELECT orderid, sku, qty, batchref FROM order_lines"
                ).fetchall()
            }
            batches = {
                r: (s, p, e, a)
                for r, s, p, e, a in con.sql(
                    "SELECT reference, sku, purchased, eta, allocated FROM batches"
                ).fetchall()
            }
            placements = con.sql(
                "SELECT orderid, sku, count(*) FROM allocations WHERE released_on IS NULL "
                "GROUP BY ALL HAVING count(*) > 1"
            ).fetchall()
            changes = Counter(
                {
                    (r, c): n
                    for r, c, n in con.sql(
                        "SELECT reference, change, count(*) FROM batch_changes GROUP BY ALL"
                    ).fetchall()
                }
            )
            last = con.sql("SELECT max(business_date) FROM runs").fetchall()[0][0]
        finally:
            con.close()
        model = self.model
        assert lines == {key: (line[0], line[2]) for key, line in model.lines.items()}
        assert batches == {
            ref: (b[0], b[1], b[2], model.allocated(ref)) for ref, b in model.batches.items()
        }
        assert all(allocated <= purchased for _, purchased, _, allocated in batches.values())
        assert placements == [], "a line is placed at most once"
        assert changes == model.changes, "each manifest change is applied once"
        assert last == model.last_night
        latest = (self.root / "outbox" / "latest").resolve().name
        assert latest == str(model.last_night)


Nights.TestCase.settings = settings(stateful_step_count=5)
test_nights = pytest.mark.fuzz(Nights.TestCase)
