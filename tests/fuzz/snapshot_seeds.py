"""Small seeds for fuzz_snapshot (tests/fuzz/run.sh): a snapshot header with no sections, one
whose table names an empty section of every tag (docs/snapshot-format.md), and, given a real
snapshot, the same file with its memory cut down to one page (small inputs mutate faster).
Usage: snapshot_seeds.py DIR [SNAPSHOT]. tests/e2e/test_snapshot.py uses its crc32c."""
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


def sections_of(data: bytes):
    count = struct.unpack_from("<I", data, 12)[0]
    for i in range(count):
        tag, _, offset, length = struct.unpack_from("<IIQQ", data, 96 + 24 * i)
        yield tag, data[offset:offset + length]


def build(version: bytes, sections) -> bytes:
    """A file holding these (tag, bytes) sections, laid out as kvmserver writes them."""
    body, table, pos = b"", [], 4096
    for tag, content in sections:
        align = 4096 if tag == 7 else 8
        pad = (-pos) % align
        body += b"\0" * pad
        pos += pad
        table.append(struct.pack("<IIQQ", tag, crc32c(content), pos, len(content)))
        body += content
        pos += len(content)
    fixed = b"KVMSSNAP" + struct.pack("<II", 1, len(table)) + version
    head = (fixed + struct.pack("<QII", pos, 0, 0) + b"".join(table)).ljust(4096, b"\0")
    crc = crc32c(head)
    return fixed + struct.pack("<QII", pos, crc, 0) + head[96:] + body


def one_page(data: bytes) -> bytes:
    """The snapshot with only its first memory page."""
    parts = dict(sections_of(data))
    gpa = struct.unpack_from("<Q", parts[6])[0]
    parts[6] = struct.pack("<QQ", gpa, 1)
    parts[7] = parts[7][:4096]
    return build(data[16:80], sorted(parts.items()))


if __name__ == "__main__":
    folder = sys.argv[1]
    if len(sys.argv) > 2:
        with open(sys.argv[2], "rb") as real, open(f"{folder}/one_page", "wb") as out:
            out.write(one_page(real.read()))
    with open(f"{folder}/empty", "wb") as out:
        out.write(header([]))
    with open(f"{folder}/tags", "wb") as out:
        out.write(header(list(range(1, 10))))
