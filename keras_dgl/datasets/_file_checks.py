"""File checks of the audio-visual loaders, done once before the pipelines are
built (WAV and JPEG headers, frame folders).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import struct

import tensorflow as tf


_JPEG_EXTENSIONS = (".jpg", ".jpeg")


def _resolve_files(root, entries, validate, report, split):
    def check(entry):
        audio = os.path.join(root, "audio", *entry.clip.split("/")) + ".wav"
        folder = os.path.join(root, "visual", *entry.clip.split("/"))
        try:
            rate = 0
            if validate != "none":
                if not os.path.isfile(audio):
                    raise _BadFile(FileNotFoundError, audio, "WAV file not found")
                rate = _check_wav(audio)
            frames = _list_frames(folder)
            if validate != "none":
                for frame in frames:
                    _check_jpeg(frame)
            if validate == "decode":
                _decode_all(audio, frames)
        except _BadFile as bad:
            return entry, bad
        return dataclasses.replace(entry, audio=audio, frames=frames,
                                   rate=rate), None

    workers = min(16, (os.cpu_count() or 1) * 4)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(check, entries))
    kept = []
    for entry, bad in results:
        if bad is None:
            kept.append(entry)
        else:
            report.bad(
                bad.error_type,
                f"{bad.reason}: {bad.path} (clip {entry.clip!r}, listed in "
                f"{entry.csv}, line {entry.line})",
                split,
                entry.clip,
                bad.path,
            )
    return kept


class _BadFile(Exception):
    def __init__(self, error_type, path, reason):
        super().__init__(f"{reason}: {path}")
        self.error_type = error_type
        self.path = path
        self.reason = reason


def _natural_key(name):
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _list_frames(folder):
    if not os.path.isdir(folder):
        raise _BadFile(FileNotFoundError, folder, "Frame folder not found")
    names = [
        n for n in os.listdir(folder)
        if n.lower().endswith(_JPEG_EXTENSIONS)
        and os.path.isfile(os.path.join(folder, n))
    ]
    if not names:
        raise _BadFile(FileNotFoundError, folder, "No JPEG frame in folder")
    return tuple(os.path.join(folder, n) for n in sorted(names, key=_natural_key))


def _check_wav(path):
    """Checks a WAV header the way `tf.audio.decode_wav` needs it; returns
    the sample rate."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise _BadFile(ValueError, path,
                           "Corrupt WAV file (no RIFF/WAVE header)")
        fmt = None
        offset = 12
        while True:
            header = handle.read(8)
            if len(header) < 8:
                raise _BadFile(
                    ValueError, path,
                    "Corrupt or truncated WAV file (no complete fmt and data "
                    "chunks)",
                )
            chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
            offset += 8
            if chunk == b"fmt ":
                body = handle.read(min(length, 40))
                if len(body) < 16:
                    raise _BadFile(ValueError, path,
                                   "Truncated WAV file (short fmt chunk)")
                audio_format, channels, rate, _, _, bits = struct.unpack(
                    "<HHIIHH", body[:16]
                )
                if audio_format != 1 or bits != 16:
                    raise _BadFile(
                        ValueError, path,
                        f"Unsupported WAV encoding (format {audio_format}, "
                        f"{bits} bits; tf.audio.decode_wav reads 16-bit PCM "
                        "only, convert e.g. with `ffmpeg -c:a pcm_s16le`)",
                    )
                if channels < 1 or rate < 1:
                    raise _BadFile(ValueError, path,
                                   "Corrupt WAV file (zero channels or rate)")
                fmt = (channels, rate)
            elif chunk == b"data":
                if fmt is None:
                    raise _BadFile(ValueError, path,
                                   "Corrupt WAV file (data chunk before fmt)")
                if offset + length > size:
                    raise _BadFile(
                        ValueError, path,
                        f"Truncated WAV file (header declares {length} bytes "
                        f"of audio, file holds {size - offset})",
                    )
                if length < 2 * fmt[0]:
                    raise _BadFile(ValueError, path,
                                   "Empty WAV file (no audio samples)")
                return fmt[1]
            offset += length + (length & 1)
            if offset > size:
                raise _BadFile(ValueError, path, "Truncated WAV file")
            handle.seek(offset)


def _check_jpeg(path):
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(_JPEG_HEAD_BYTES)
        handle.seek(max(0, size - 1024))
        tail = handle.read()
    if head[:3] != b"\xff\xd8\xff":
        raise _BadFile(ValueError, path, "Corrupt JPEG file (no SOI marker)")
    if b"\xff\xd9" not in tail:
        raise _BadFile(ValueError, path,
                       "Truncated JPEG file (no EOI marker at its end)")
    problem = _jpeg_header_problem(head, size)
    if problem:
        raise _BadFile(ValueError, path, f"Corrupt JPEG file ({problem})")


# The header segments of a JPEG (tables, frame and scan headers) almost
# always fit in this many bytes; a header running past them is not checked.
_JPEG_HEAD_BYTES = 1 << 16
# SOF markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_header_problem(head, size):
    """Walks the segments from SOI to the first SOS and returns what is wrong
    with them, or `""`. Damage there makes the decoder fail; damage in the
    compressed data after SOS is decoded (with warnings) instead."""
    position, components = 2, None
    while position + 4 <= len(head):
        if head[position] != 0xFF:
            return f"no marker at byte {position}"
        while position + 1 < len(head) and head[position + 1] == 0xFF:
            position += 1  # fill bytes
        marker = head[position + 1]
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            position += 2  # markers without a length
            continue
        if marker in (0x00, 0xD8, 0xD9):
            return f"unexpected marker 0x{marker:02X} at byte {position}"
        length = int.from_bytes(head[position + 2:position + 4], "big")
        end = position + 2 + length
        if length < 2 or end > size:
            return f"bad segment length at byte {position}"
        body = head[position + 4:end]
        complete = end <= len(head)
        if marker in _SOF_MARKERS and complete:
            if len(body) < 6:
                return "short frame header"
            height = int.from_bytes(body[1:3], "big")
            width = int.from_bytes(body[3:5], "big")
            count = body[5]
            if (height == 0 or width == 0 or count not in (1, 3, 4)
                    or len(body) != 6 + 3 * count):
                return (f"bad frame header: {width}x{height}, {count} "
                        "component(s)")
            components = {body[6 + 3 * i] for i in range(count)}
        elif marker == 0xC4 and complete:
            offset = 0
            while offset < len(body):
                if offset + 17 > len(body) or body[offset] & 0xEC:
                    return "bad Huffman table"
                offset += 17 + sum(body[offset + 1:offset + 17])
            if offset != len(body):
                return "bad Huffman table"
        elif marker == 0xDB and complete:
            offset = 0
            while offset < len(body):
                offset += 1 + (128 if body[offset] >> 4 else 64)
            if offset != len(body):
                return "bad quantization table"
        elif marker == 0xDA:
            if components is None:
                return "scan before any frame header"
            if complete:
                count = body[0] if body else 0
                ids = {body[1 + 2 * i] for i in range(count)
                       if 1 + 2 * i < len(body)}
                if (not 1 <= count <= 4 or len(body) != 4 + 2 * count
                        or not ids <= components):
                    return "bad scan header"
            return ""
        position = end
    if len(head) < size:
        return ""  # the header runs past the bytes read: not checked
    return "no scan (SOS) segment"


def _decode_all(audio, frames):
    try:
        tf.audio.decode_wav(tf.io.read_file(audio))
    except (tf.errors.OpError, ValueError) as error:
        raise _BadFile(ValueError, audio,
                       f"Undecodable WAV file ({_short(error)})") from error
    for frame in frames:
        try:
            tf.io.decode_jpeg(tf.io.read_file(frame), channels=3)
        except (tf.errors.OpError, ValueError) as error:
            raise _BadFile(ValueError, frame,
                           f"Undecodable JPEG file ({_short(error)})") from error


def _short(error):
    message = getattr(error, "message", None) or str(error)
    return message.strip().splitlines()[0][-200:]
