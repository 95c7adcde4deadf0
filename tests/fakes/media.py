"""Tiny but real media files for the fakes: PNG, WAV and H.264 MP4, built from the standard library.

The bot downloads, inspects and re-uploads what Runpod returns, so the fakes must serve bytes that
real decoders accept, not placeholder text. Every generator is cached by its arguments: a
benchmark with a thousand jobs of the same size builds each file once.
"""

from __future__ import annotations

import math
import struct
import zlib
from functools import lru_cache

MAX_SIDE = 8192  # refuse absurd sizes instead of building gigabytes
_PAD_CHUNK = b"paDd"  # PNG ancillary, private, safe-to-copy chunk: decoders skip it


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


@lru_cache(maxsize=64)
def png(width: int, height: int, rgb: tuple[int, int, int] = (91, 33, 182), pad: int = 0) -> bytes:
    """A solid-colour RGB PNG; `pad` adds a skippable chunk of that size (upload-limit tests)."""
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ValueError(f"PNG size out of range: {width}x{height}")
    row = b"\x00" + bytes(rgb) * width  # filter byte 0 ("none") then the pixels
    packer = zlib.compressobj(6)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    padding = _png_chunk(_PAD_CHUNK, bytes(pad)) if pad else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + padding
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height read from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@lru_cache(maxsize=64)
def wav(seconds: float, rate: int = 8000, pad: int = 0) -> bytes:
    """A quiet 400 Hz tone, 16-bit mono PCM; `pad` adds a JUNK chunk that players skip."""
    cycle = rate // 400
    one = b"".join(
        struct.pack("<h", round(3000 * math.sin(2 * math.pi * i / cycle))) for i in range(cycle)
    )
    frames = max(1, round(seconds * rate))
    samples = (one * (frames // cycle + 1))[: frames * 2]
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    junk = (
        b"JUNK" + struct.pack("<I", pad) + bytes(pad + pad % 2) if pad else b""
    )  # RIFF pads to even
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + junk
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def wav_seconds(data: bytes) -> float:
    """Duration of a PCM WAV, from its fmt and data chunks."""
    pos, rate_bytes, size = 12, 0, 0
    while pos + 8 <= len(data):
        kind, length = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if kind == b"fmt ":
            rate_bytes = struct.unpack("<I", data[pos + 16 : pos + 20])[0]
        elif kind == b"data":
            size = length
        pos += 8 + length + (length & 1)
    return size / rate_bytes if rate_bytes else 0.0


# --- H.264 ------------------------------------------------------------------------------------
# One IDR frame, Baseline profile, CAVLC. Every macroblock is Intra16x16 with DC prediction and no
# residual (mb_type 3, chroma DC, qp delta 0, empty DC block): exactly one byte, 0b00100111, per
# macroblock, so even 1080p costs 8 KB. Decoders paint it mid grey.


class _Bits:
    def __init__(self) -> None:
        self.bits: list[str] = []

    def u(self, n: int, value: int) -> None:
        self.bits.append(format(value, f"0{n}b"))

    def ue(self, value: int) -> None:
        code = format(value + 1, "b")
        self.bits.append("0" * (len(code) - 1) + code)

    def trailing(self) -> bytes:
        """rbsp_trailing_bits: a stop bit, then zeros to the byte boundary."""
        text = "".join(self.bits) + "1"
        text += "0" * (-len(text) % 8)
        return int(text, 2).to_bytes(len(text) // 8, "big")


def _nal(header: int, rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes so no 00 00 0x start code appears inside the payload."""
    out, zeros = bytearray([header]), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _h264(width: int, height: int) -> tuple[bytes, bytes, bytes]:
    """SPS, PPS and one IDR slice (NAL units without start codes)."""
    mbs_w, mbs_h = -(-width // 16), -(-height // 16)
    sps = _Bits()
    sps.u(8, 66)  # Baseline
    sps.u(8, 0xC0)  # constraint_set0 and set1
    sps.u(8, 40)  # level 4.0
    for value in (0, 0, 2, 1):  # sps id, log2_max_frame_num-4, poc type 2, max ref frames
        sps.ue(value)
    sps.u(1, 0)
    sps.ue(mbs_w - 1)
    sps.ue(mbs_h - 1)
    sps.u(2, 0b11)  # frame_mbs_only, direct_8x8_inference
    crop_right, crop_bottom = (mbs_w * 16 - width) // 2, (mbs_h * 16 - height) // 2
    sps.u(1, int(bool(crop_right or crop_bottom)))
    if crop_right or crop_bottom:
        for value in (0, crop_right, 0, crop_bottom):
            sps.ue(value)
    sps.u(1, 0)  # no VUI
    pps = _Bits()
    for value in (0, 0):
        pps.ue(value)
    pps.u(2, 0)  # CAVLC, no bottom-field poc
    for value in (0, 0, 0):
        pps.ue(value)
    pps.u(3, 0)  # weighted pred off
    for value in (0, 0, 0):  # qp, qs, chroma offset (se(0) == ue(0))
        pps.ue(value)
    pps.u(3, 0)  # no deblocking control, no constrained intra, no redundant pic cnt
    idr = _Bits()
    for value in (0, 7, 0):  # first mb, slice type I (all), pps id
        idr.ue(value)
    idr.u(4, 0)  # frame_num
    idr.ue(0)  # idr_pic_id
    idr.u(2, 0)  # dec_ref_pic_marking
    idr.ue(0)  # slice_qp_delta
    idr.bits.append("00100111" * (mbs_w * mbs_h))
    return _nal(0x67, sps.trailing()), _nal(0x68, pps.trailing()), _nal(0x65, idr.trailing())


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, version_flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version_flags), *parts)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


@lru_cache(maxsize=32)
def mp4(width: int = 1280, height: int = 720, seconds: float = 5.0, pad: int = 0) -> bytes:
    """A playable MP4 (ISO BMFF, one H.264 track, one grey frame held for `seconds`)."""
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width % 2 or height % 2:
        raise ValueError(f"video size must be even and in range: {width}x{height}")
    sps, pps, idr = _h264(width, height)
    sample = struct.pack(">I", len(idr)) + idr
    ms = max(1, round(seconds * 1000))
    avcc = _box(
        b"avcC",
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),
        struct.pack(">H", len(sps)) + sps,
        bytes([1]) + struct.pack(">H", len(pps)) + pps,
    )
    avc1 = _box(
        b"avc1",
        bytes(6) + struct.pack(">H", 1) + bytes(16),
        struct.pack(">HHIIIH", width, height, 0x480000, 0x480000, 0, 1),
        bytes(32) + struct.pack(">Hh", 0x18, -1),
        avcc,
    )

    def stbl(offset: int) -> bytes:
        return _box(
            b"stbl",
            _full(b"stsd", 0, struct.pack(">I", 1), avc1),
            _full(b"stts", 0, struct.pack(">III", 1, 1, ms)),
            _full(b"stsc", 0, struct.pack(">IIII", 1, 1, 1, 1)),
            _full(b"stsz", 0, struct.pack(">III", 0, 1, len(sample))),
            _full(b"stco", 0, struct.pack(">II", 1, offset)),
        )

    def moov(offset: int) -> bytes:
        dinf = _box(b"dinf", _full(b"dref", 0, struct.pack(">I", 1), _full(b"url ", 1)))
        minf = _box(b"minf", _full(b"vmhd", 1, bytes(8)), dinf, stbl(offset))
        mdia = _box(
            b"mdia",
            _full(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, 1000, ms, 0x55C4, 0)),
            _full(b"hdlr", 0, bytes(4) + b"vide" + bytes(12) + b"VideoHandler\x00"),
            minf,
        )
        tkhd = _full(
            b"tkhd",
            3,
            struct.pack(">IIIII", 0, 0, 1, 0, ms) + bytes(8) + struct.pack(">hhhH", 0, 0, 0, 0),
            _MATRIX + struct.pack(">II", width << 16, height << 16),
        )
        mvhd = _full(
            b"mvhd",
            0,
            struct.pack(">IIIIIH", 0, 0, 1000, ms, 0x10000, 0x100) + bytes(10),
            _MATRIX + bytes(24) + struct.pack(">I", 2),
        )
        return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))

    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41")
    offset = len(ftyp) + len(moov(0)) + 8  # stco is fixed-size, so the offset is known up front
    free = _box(b"free", bytes(pad)) if pad else b""
    return ftyp + moov(offset) + _box(b"mdat", sample) + free
