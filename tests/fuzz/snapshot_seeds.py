"""Small seeds for fuzz_snapshot (tests/fuzz/run.sh): a snapshot header with no sections, and
one whose table names an empty section of every tag (docs/snapshot-format.md). Usage:
snapshot_seeds.py DIR. tests/e2e/test_snapshot.py uses its crc32c."""
import struct
import sys


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def header(tags, size=4096) -> bytes:
    table = b"".join(struct.pack("<IIQQ", tag, 0, 4096, 0) for tag in tags)
    fixed = b"KVMSSNAP" + struct.pack("<II", 1, len(tags)) + b"fuzz".ljust(64, b"\0")
    head = fixed + struct.pack("<QII", size, 0, 0)
    crc = crc32c((head + table).ljust(4096, b"\0"))
    head = fixed + struct.pack("<QII", size, crc, 0)
    return (head + table).ljust(size, b"\0")


if __name__ == "__main__":
    folder = sys.argv[1]
    with open(f"{folder}/empty", "wb") as out:
        out.write(header([]))
    with open(f"{folder}/tags", "wb") as out:
        out.write(header(list(range(1, 10))))
