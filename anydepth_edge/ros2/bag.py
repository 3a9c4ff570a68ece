"""--record-bag FILE.mcap: the messages the node publishes, written to an MCAP ROS 2 bag with
mcap-ros2-support (pip; no ROS installation). Schemas are the ROS 2 message definitions (encoding
ros2msg, topics.schema_text) and messages CDR, as rosbag2 writes them, so `ros2 bag play` (Humble:
`-s mcap`, with ros-humble-rosbag2-storage-mcap) and Foxglove read the file.

Like --record, the bag is written as `.<name>.~rec<pid>.partial` beside the target and moved into place
when complete, never over a file that is there (unless --overwrite). A run killed mid-way leaves
the partial: chunks written so far are intact, and the next run with that name keeps them as
`<stem>.recovered.mcap` (ros2/recover.py). Python 3.8.
"""

import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from anydepth_edge.fileio import ensure_writable_dir
from anydepth_edge.errors import UserError
from anydepth_edge.runtime.outputs import check_free_space, fsync_dir, partial_path, publish, write_failure
from anydepth_edge.ros2.recover import recover_stale_bags
from anydepth_edge.ros2.topics import TOPICS, resolve, schema_text

OPTION = "--record-bag"
CHUNK_BYTES = 1 << 20


def check_bag_target(path, overwrite: bool, min_free_mb: float) -> Path:
    """An .mcap name, not an existing file unless --overwrite, room beside it: before any work."""
    p = Path(path)
    if p.is_dir():  # `ros2 bag record -o` names a folder; this writes one MCAP file
        raise UserError(f"{OPTION} {path} is a folder: give a file in it, e.g. {p / 'depth.mcap'} "
                        "(one MCAP file; ros2 bag play and Foxglove open it)")
    if p.suffix.lower() != ".mcap":
        raise UserError(f"{OPTION} {path}: give an .mcap file name (a ROS 2 bag in MCAP storage)")
    if os.path.lexists(str(p)) and not overwrite:
        raise UserError(f"{OPTION} {path} exists: pass --overwrite to replace it, or give another name")
    check_free_space(OPTION, ensure_writable_dir(p.parent), min_free_mb)
    return p


def import_mcap_ros2():
    try:
        from mcap.writer import CompressionType
        from mcap_ros2.writer import Writer
    except ImportError:
        raise UserError(f"{OPTION} needs mcap-ros2-support: pip install 'anydepth-edge[ros2]' "
                        "(no ROS needed)") from None
    return Writer, CompressionType


class BagOutlet:
    """Writes each (kind, message dict) to the kind's topic, resolved as the node would name it."""

    def __init__(self, path, overwrite: bool, namespace: str, node: str, notify: Optional[Callable[[str], None]] = None):
        writer_cls, compression = import_mcap_ros2()
        self.final = Path(path)
        if notify is None:
            from anydepth_edge.console import warn as notify
        recover_stale_bags(self.final, notify)  # a killed run's bag: kept as <stem>.recovered.mcap
        self.overwrite = overwrite
        self.tmp = partial_path(self.final)
        self.namespace, self.node = namespace, node
        self.counts: Dict[str, int] = {}
        self._schemas: Dict[str, Any] = {}
        try:
            self._file = open(str(self.tmp), "wb")
            fsync_dir(self.tmp.parent)
            # LZ4: cheap on the robot's CPU; both rosbag2 and Foxglove read LZ4 chunks
            self._writer = writer_cls(self._file, chunk_size=CHUNK_BYTES, compression=compression.LZ4)
        except OSError as e:
            raise write_failure(OPTION, self.final, e) from None

    def topic(self, kind: str) -> str:
        return resolve(TOPICS[kind].name, self.namespace, self.node)

    def publish(self, kind: str, msg: Dict[str, Any], log_ns: Optional[int] = None) -> None:
        schema = self._schemas.get(kind)
        try:
            if schema is None:
                msgtype = TOPICS[kind].msgtype
                schema = self._schemas[kind] = self._writer.register_msgdef(msgtype, schema_text(msgtype))
            n = self.counts.get(kind, 0)
            now = time.time_ns() if log_ns is None else log_ns  # receive time, as a recorder logs it
            self._writer.write_message(self.topic(kind), schema, msg, log_time=now, publish_time=now, sequence=n)
        except OSError as e:
            raise write_failure(OPTION, self.final, e) from None
        self.counts[kind] = n + 1

    def close(self) -> Optional[str]:
        """Finish the file (summary and footer), make it durable, move it into place; the line for
        the run summary. A bag that could not be finished stays as the partial, named in the error."""
        if self._file.closed:
            return None
        failure = None
        try:
            self._writer.finish()
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            failure = e
        try:
            self._file.close()
        except OSError as e:  # its buffer could not be written either: the first failure is the one to tell
            failure = failure or e
        if failure is not None:
            raise write_failure(OPTION, self.tmp, failure) from None
        where = publish(self.tmp, self.final, self.overwrite)
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts.items()) or "no messages"
        return f"{where} (ROS 2 bag: {counts})"
