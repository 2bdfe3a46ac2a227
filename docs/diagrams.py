"""Write docs/architecture.svg: the layers, and how a record travels (producer to disk to consumer).

The diagram's source is this file; it uses the standard library only. Run it after changing the
picture, and commit both files:

    python docs/diagrams.py           # writes docs/architecture.svg
    python docs/diagrams.py --check   # exit 1 when the committed SVG is not what this file draws

`tests/test_docs_diagram.py` runs the check in the default suite, so the SVG never goes stale.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

SVG_PATH = Path(__file__).with_name("architecture.svg")
WIDTH = 1120
HEIGHT = 860
LINE = 15
"""Line height of box text, in pixels."""

TOP = "#e8e8e8"
CLIENT = "#dbe9f8"
SERVER = "#fbe3cf"
PURE = "#dcf2dc"
FLOOR = "#f7f2cc"
DISK = "#e9dcf5"


@dataclass(frozen=True, slots=True)
class Box:
    """A box with a bold title line and plain lines under it."""

    x: int
    y: int
    w: int
    h: int
    title: str
    lines: tuple[str, ...]
    fill: str

    def svg(self) -> list[str]:
        """The box's SVG elements: the rectangle, then its lines of text, centred."""
        out = [
            f'<rect x="{self.x}" y="{self.y}" width="{self.w}" height="{self.h}" rx="6" '
            f'fill="{self.fill}" stroke="#555"/>'
        ]
        cx = self.x + self.w // 2
        top = self.y + (self.h - LINE * (1 + len(self.lines))) // 2 + 12
        out.append(f'<text x="{cx}" y="{top}" class="t">{escape(self.title)}</text>')
        out.extend(
            f'<text x="{cx}" y="{top + LINE * (i + 1)}">{escape(line)}</text>'
            for i, line in enumerate(self.lines)
        )
        return out

    @property
    def bottom(self) -> int:
        """Its lower edge."""
        return self.y + self.h

    @property
    def right(self) -> int:
        """Its right edge."""
        return self.x + self.w

    @property
    def mid_x(self) -> int:
        """Its horizontal middle."""
        return self.x + self.w // 2

    @property
    def mid_y(self) -> int:
        """Its vertical middle."""
        return self.y + self.h // 2


def arrow(
    x1: int, y1: int, x2: int, y2: int, label: str = "", *, dashed: bool = False
) -> list[str]:
    """A line with an arrow head at (x2, y2), and an optional label above its middle."""
    dash = ' stroke-dasharray="5,4"' if dashed else ""
    out = [
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#333" '
        f'marker-end="url(#head)"{dash}/>'
    ]
    if label:
        lx, ly = (x1 + x2) // 2, (y1 + y2) // 2 - 5
        out.append(f'<text x="{lx}" y="{ly}" class="s">{escape(label)}</text>')
    return out


def heading(y: int, text: str) -> str:
    """A panel's title, left-aligned."""
    return f'<text x="20" y="{y}" class="h">{escape(text)}</text>'


def layers() -> list[str]:
    """Panel 1: the packages, imports pointing down only (tests/test_layering.py)."""
    out = [heading(30, "Layers: imports point down only (checked by tests/test_layering.py)")]
    top = Box(
        20,
        45,
        1080,
        40,
        "cli/ · testing/ · sync.py · groups/",
        ("on top of the client and the server",),
        TOP,
    )
    producer = Box(20, 110, 215, 58, "producer/", ("accumulator · window · facade",), CLIENT)
    consumer = Box(250, 110, 215, 58, "consumer/", ("fetcher · commits · facade",), CLIENT)
    admin = Box(480, 110, 200, 58, "admin.py", ("LanceClient: topics, retention",), CLIENT)
    reconnect = Box(
        20, 190, 330, 58, "reconnect.py", ("ConnectionManager: backoff, redirects",), CLIENT
    )
    operations = Box(365, 190, 315, 58, "operations.py", ("typed control requests",), CLIENT)
    connection = Box(
        20,
        270,
        660,
        58,
        "connection.py: Connection",
        ("asyncio transport · waiters (futures, callbacks) · timers; drives the exchange",),
        CLIENT,
    )
    app = Box(
        740, 110, 360, 58, "server/app.py · server/cli.py", ("LanceServer, lnc serve",), SERVER
    )
    session = Box(
        740,
        190,
        360,
        58,
        "server/session.py · commands.py",
        ("one BufferedProtocol per connection",),
        SERVER,
    )
    storage = Box(
        740,
        270,
        360,
        58,
        "server/storage/",
        ("topics · segments · group-commit writer · retention",),
        SERVER,
    )
    protocol = Box(
        20,
        355,
        1080,
        58,
        "protocol/: sans-I/O (no sockets, no asyncio, no clocks)",
        ("frame · control · records · error_texts (one table) · exchange (client pairing rules)",),
        PURE,
    )
    floor = Box(20, 440, 1080, 40, "errors.py · _fs.py · tlv.py", ("shared floor",), FLOOR)
    boxes = [top, producer, consumer, admin, reconnect, operations, connection]
    boxes += [app, session, storage, protocol, floor]
    for box in boxes:
        out += box.svg()
    out += arrow(350, top.bottom, 350, producer.y)
    out += arrow(920, top.bottom, 920, app.y)
    out += arrow(producer.mid_x, producer.bottom, producer.mid_x, reconnect.y)
    out += arrow(300, consumer.bottom, 300, reconnect.y)
    out += arrow(admin.mid_x, admin.bottom, admin.mid_x, operations.y)
    out += arrow(reconnect.mid_x, reconnect.bottom, reconnect.mid_x, connection.y)
    out += arrow(operations.mid_x, operations.bottom, operations.mid_x, connection.y)
    out += arrow(connection.mid_x, connection.bottom, connection.mid_x, protocol.y)
    out += arrow(app.mid_x, app.bottom, app.mid_x, session.y)
    out += arrow(session.mid_x, session.bottom, session.mid_x, storage.y)
    out += arrow(storage.mid_x, storage.bottom, storage.mid_x, protocol.y)
    out += arrow(560, protocol.bottom, 560, floor.y)
    out.append(
        '<text x="700" y="220" class="s" transform="rotate(-90 700 220)">'
        "client and server never import each other</text>"
    )
    out.append('<line x1="710" y1="100" x2="710" y2="340" stroke="#c33" stroke-dasharray="3,3"/>')
    return out


COLUMN = 165
GAP = 18


def lane(y: int, h: int, fills: list[str], texts: list[tuple[str, tuple[str, ...]]]) -> list[Box]:
    """One row of equal boxes, left to right."""
    return [
        Box(20 + i * (COLUMN + GAP), y, COLUMN, h, title, lines, fill)
        for i, ((title, lines), fill) in enumerate(zip(texts, fills, strict=True))
    ]


def travels() -> list[str]:
    """Panel 2: one record from `send_async` to the disk, and from the disk to `poll()`."""
    out = [heading(525, "How a record travels: producer to disk (top), disk to consumer (bottom)")]
    produce = lane(
        545,
        92,
        [CLIENT, CLIENT, PURE, SERVER, SERVER, DISK],
        [
            (
                "send_async(data)",
                ("accumulator appends", "one TLV record to", "the topic's open batch"),
            ),
            ("sealed batch", ("one payload (LZ4 opt.)", "window: at most", "max_pending_acks")),
            (
                "exchange.send_batch",
                ("header + payload bytes;", "Connection writes them", "to the transport"),
            ),
            (
                "server session",
                ("FrameDecoder on each", "read; batches of the", "read go to the writer"),
            ),
            (
                "group-commit writer",
                ("appends every queued", "batch, then one fsync", "(all connections)"),
            ),
            ("segment file", ("topic/….lnc", "durable bytes,", "read by byte offset")),
        ],
    )
    consume = lane(
        715,
        92,
        [CLIENT, CLIENT, PURE, CLIENT, SERVER, SERVER],
        [
            (
                "poll() -> PollResult",
                ("records of the window;", "commit -> OffsetStore", "(_fs: fsync, replace)"),
            ),
            ("fetcher", ("decode_stream(tail +", "window): records and", "the new partial tail")),
            ("exchange", ("RequestAnswered: the", "FetchResponse payload,", "a memoryview")),
            ("Connection", ("reads into the", "exchange's buffer", "(BufferedProtocol)")),
            (
                "FetchResponse",
                ("header + window", "written without a copy", "(durable bytes only)"),
            ),
            ("Fetch(offset, max)", ("commands read the", "segment from offset", "in a thread")),
        ],
    )
    for box in produce + consume:
        out += box.svg()
    for left, right in itertools.pairwise(produce):
        out += arrow(left.right, left.mid_y, right.x, right.mid_y)
    for left, right in itertools.pairwise(consume):
        out += arrow(right.x, right.mid_y, left.right, left.mid_y)
    disk, fetch = produce[-1], consume[-1]
    out += arrow(disk.mid_x, disk.bottom, fetch.mid_x, fetch.y)
    ack_y = produce[0].bottom + 28
    out.append(
        f'<polyline points="{produce[4].mid_x},{produce[4].bottom} {produce[4].mid_x},{ack_y} '
        f'{produce[1].mid_x},{ack_y} {produce[1].mid_x},{produce[1].bottom + 6}" fill="none" '
        'stroke="#333" stroke-dasharray="5,4" marker-end="url(#head)"/>'
    )
    out.append(
        f'<text x="{(produce[1].mid_x + produce[4].mid_x) // 2}" y="{ack_y + 15}" class="s">'
        "Ack(batch_id) after the fsync, FIFO -&gt; exchange: BatchAcked -&gt; "
        "the window settles the batch, its buffer is freed</text>"
    )
    out.append(
        f'<text x="{WIDTH // 2}" y="{consume[0].bottom + 30}" class="s">'
        "An ErrorResponse carries no batch id: the exchange places it (error_texts.Side) and "
        "settles refused batches with an ack barrier (two keepalives).</text>"
    )
    return out


def render() -> str:
    """The whole SVG document, deterministic."""
    body = [*layers(), *travels()]
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">',
        "<defs>",
        '<marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">',
        '<path d="M0,0 L10,4 L0,8 z" fill="#333"/>',
        "</marker>",
        "<style>text{text-anchor:middle;fill:#111}.t{font-weight:bold}"
        ".h{text-anchor:start;font-size:15px;font-weight:bold}.s{font-size:11px;fill:#333}"
        "</style>",
        "</defs>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    ]
    return "\n".join([*head, *body, "</svg>", ""])


def main(argv: list[str] | None = None) -> int:
    """Write the SVG, or with `--check` report whether the committed one is current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the SVG is stale")
    args = parser.parse_args(argv)
    svg = render()
    if args.check:
        current = SVG_PATH.exists() and SVG_PATH.read_text(encoding="utf-8") == svg
        if not current:
            print(f"{SVG_PATH} is stale: run python docs/diagrams.py", file=sys.stderr)
        return 0 if current else 1
    SVG_PATH.write_text(svg, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
