"""A bag whose run was killed, made readable again: the partial's intact records (schemas, channels,
messages of every complete chunk) rewritten as a finished MCAP file with a summary and footer. The
same job as the `mcap recover` command of the mcap CLI (a Go binary, not part of the pip install).

The next `run --record-bag NAME.mcap` does it by itself for partials of runs that are gone (as
--record keeps a crashed video), and by hand:

    python -m anydepth_edge.ros2.recover .NAME.mcap.~rec1234.partial [OUT.mcap]

(OUT.mcap default: NAME.recovered.mcap beside it; the partial is removed once its messages are in OUT)
"""

import struct
import sys
from pathlib import Path
from typing import Callable, Optional, Tuple

from anydepth_edge.errors import UserError
from anydepth_edge.fileio import recording_final_name
from anydepth_edge.runtime.outputs import partial_path, publish, recovered_path, stale_partials


def recover_bag(partial, out) -> Tuple[Optional[Path], int]:
    """(where the recovered bag went, its message count); (None, 0) when the partial holds no
    complete message (nothing is written then). Reading stops at the first truncated or damaged record."""
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader
    from mcap.writer import CompressionType, Writer

    out = Path(out)
    tmp = partial_path(out)
    schemas, channels, count = {}, {}, 0
    with open(str(partial), "rb") as src, open(str(tmp), "wb") as dst:
        writer = Writer(dst, compression=CompressionType.LZ4)
        writer.start(profile="ros2", library="anydepth-edge recover")
        try:
            for record in StreamReader(src).records:
                if isinstance(record, Schema) and record.id not in schemas:
                    schemas[record.id] = writer.register_schema(record.name, record.encoding, record.data)
                elif isinstance(record, Channel) and record.id not in channels and record.schema_id in schemas:
                    channels[record.id] = writer.register_channel(record.topic, record.message_encoding,
                                                                  schemas[record.schema_id], record.metadata)
                elif isinstance(record, Message) and record.channel_id in channels:
                    writer.add_message(channels[record.channel_id], record.log_time, record.data,
                                       record.publish_time, record.sequence)
                    count += 1
        except (McapError, EOFError, ValueError, RuntimeError, struct.error):  # the cut: what came before it is kept
            pass
        writer.finish()
    if count == 0:
        tmp.unlink()
        return None, 0
    return publish(tmp, out, overwrite=False), count


def recover_stale_bags(final: Path, notify: Callable[[str], None]) -> None:
    """Partials of `final` left by runs that are gone: kept as `<stem>.recovered.mcap` when they
    hold messages, else removed."""
    for stale in stale_partials(final):
        kept, count = recover_bag(stale, recovered_path(final))
        if kept is not None:
            notify(f"kept the bag of an earlier run that did not finish as {kept} ({count} messages)")
        else:
            notify(f"removed {stale}: an unfinished bag of an earlier run, without a complete message")
        stale.unlink()


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2) or args[0] in ("-h", "--help"):
        print("usage: " + "\n".join(__doc__.strip().splitlines()[-3:]).strip())
        return 0 if args and args[0] in ("-h", "--help") else 2
    partial = Path(args[0])
    name = recording_final_name(partial.name) or partial.stem + ".mcap"
    out = Path(args[1]) if len(args) == 2 else recovered_path(partial.with_name(name))
    try:
        if not partial.is_file():
            raise UserError(f"{partial}: no such file")
        kept, count = recover_bag(partial, out)
    except (UserError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if kept is None:
        print(f"error: {partial} holds no complete message: nothing to recover", file=sys.stderr)
        return 1
    partial.unlink()  # its messages are all in the recovered bag: the next run must not recover it again
    print(f"{kept}: {count} messages recovered; {partial} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
