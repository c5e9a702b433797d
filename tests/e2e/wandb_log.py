"""A reader of W&B transaction logs (run-<id>.wandb) written from
../shared/FORMATS.md 1.2, independently of metrictap's C writer: the file
header, 32 KiB blocks, chunk headers (CRC-32 of type and payload, length,
type), FULL/FIRST/MIDDLE/LAST.  The schema is W&B's own: records are decoded
with wandb.proto.wandb_internal_pb2."""
import struct
import zlib

BLOCK = 32768
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class CorruptLog(Exception):
    pass


def records(data):
    """The payloads of the records in `data` (the whole file), in order."""
    if data[:7] != HEADER:
        raise CorruptLog("bad file header %r" % data[:7])
    off, out, cur = 7, [], None
    while off < len(data):
        room = BLOCK - off % BLOCK
        if room < 7:
            if data[off:off + room].strip(b"\0"):
                raise CorruptLog("non-zero padding at %d" % off)
            off += room
            continue
        if off + 7 > len(data):
            raise CorruptLog("torn chunk header at %d" % off)
        crc, length, typ = struct.unpack("<IHB", data[off:off + 7])
        if 7 + length > room or off + 7 + length > len(data):
            raise CorruptLog("chunk at %d runs past its block or the file" % off)
        payload = data[off + 7:off + 7 + length]
        if zlib.crc32(payload, zlib.crc32(bytes([typ]))) != crc:
            raise CorruptLog("checksum mismatch at %d" % off)
        if typ == FULL:
            if cur is not None:
                raise CorruptLog("FULL inside a record at %d" % off)
            out.append(payload)
        elif typ == FIRST:
            cur = bytearray(payload)
        elif typ in (MIDDLE, LAST):
            if cur is None:
                raise CorruptLog("%d chunk without FIRST at %d" % (typ, off))
            cur += payload
            if typ == LAST:
                out.append(bytes(cur))
                cur = None
        else:
            raise CorruptLog("chunk type %d at %d" % (typ, off))
        off += 7 + length
    if cur is not None:
        raise CorruptLog("the last record is not finished")
    return out


def decode(path):
    from wandb.proto import wandb_internal_pb2 as pb
    with open(path, "rb") as f:
        return [pb.Record.FromString(p) for p in records(f.read())]
