"""Graph versions of the WAV and JPEG structure checks.

`_Transforms.read` asserts them on the bytes of every file it reads inside
`Dataset.map`, so a file its decoder would choke on fails with the file's
name in the message.
"""

from __future__ import annotations

import tensorflow as tf

from keras_dgl.datasets._file_checks import _SOF_MARKERS


def _read_uint(contents, position, size):
    """Little-endian unsigned int of `size` bytes at `position` (0 past the
    end), as int64."""
    length = tf.cast(tf.strings.length(contents), tf.int64)
    position = tf.cast(tf.minimum(position, length), tf.int32)
    raw = tf.io.decode_raw(
        tf.strings.substr(contents, position, size), tf.uint8, fixed_length=size
    )
    weights = tf.constant([256**i for i in range(size)], tf.int64)
    return tf.reduce_sum(tf.cast(raw, tf.int64) * weights)


def _wav_structure_ok(contents):
    """Graph version of `_check_wav`: RIFF/WAVE magic, a 16-bit PCM fmt
    chunk, and a complete, non-empty data chunk."""
    length = tf.cast(tf.strings.length(contents), tf.int64)
    head = tf.strings.substr(contents, 0, 12)
    magic = tf.logical_and(
        tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"),
        tf.equal(
            tf.strings.substr(
                tf.strings.join([head, b"\x00" * 12]), 8, 4
            ),
            b"WAVE",
        ),
    )

    def keep_going(offset, found, fmt_ok, data_end, data_size, steps):
        return tf.logical_and(
            tf.logical_and(offset + 8 <= length, tf.logical_not(found)),
            steps < 64,
        )

    def step(offset, found, fmt_ok, data_end, data_size, steps):
        chunk = tf.strings.substr(
            contents, tf.cast(tf.minimum(offset, length), tf.int32), 4
        )
        size = _read_uint(contents, offset + 4, 4)
        is_fmt = tf.equal(chunk, b"fmt ")
        pcm16 = tf.logical_and(
            tf.equal(_read_uint(contents, offset + 8, 2), 1),
            tf.equal(_read_uint(contents, offset + 22, 2), 16),
        )
        fmt_ok = tf.logical_or(fmt_ok, tf.logical_and(is_fmt, pcm16))
        is_data = tf.equal(chunk, b"data")
        data_end = tf.where(is_data, offset + 8 + size, data_end)
        data_size = tf.where(is_data, size, data_size)
        next_offset = offset + 8 + size + size % 2
        return next_offset, is_data, fmt_ok, data_end, data_size, steps + 1

    zero = tf.constant(0, tf.int64)
    _, found, fmt_ok, data_end, data_size, _ = tf.while_loop(
        keep_going,
        step,
        (tf.constant(12, tf.int64), tf.constant(False), tf.constant(False),
         zero, zero, tf.constant(0)),
    )
    return tf.reduce_all(
        tf.stack([magic, found, fmt_ok, data_end <= length, data_size > 0])
    )


def _jpeg_markers_ok(contents):
    """Graph version of `_check_jpeg`: SOI at the start, EOI in the last
    1024 bytes, and sound segments up to the first scan (the frame header's
    size and component count, every segment length); Huffman and
    quantization tables are checked up front only."""
    length = tf.strings.length(contents)
    soi = tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff")
    tail = tf.io.decode_raw(
        tf.strings.substr(contents, tf.maximum(length - 1024, 0), 1024),
        tf.uint8,
    )
    eoi = tf.reduce_any(
        tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9))
    )
    return tf.reduce_all(tf.stack([soi, eoi, _jpeg_segments_ok(contents)]))


def _byte(contents, position):
    """Unsigned byte at `position` (0 past the end), as int32."""
    length = tf.strings.length(contents)
    raw = tf.io.decode_raw(
        tf.strings.substr(contents, tf.minimum(position, length), 1),
        tf.uint8, fixed_length=1,
    )
    return tf.cast(raw[0], tf.int32)


def _jpeg_segments_ok(contents):
    length = tf.strings.length(contents)
    sof_markers = tf.constant(sorted(_SOF_MARKERS), tf.int32)

    def keep_going(position, done, ok, seen_sof, steps):
        return tf.logical_and(tf.logical_not(done), steps < 512)

    def step(position, done, ok, seen_sof, steps):
        lead = _byte(contents, position)
        marker = _byte(contents, position + 1)
        size = _byte(contents, position + 2) * 256 + _byte(contents, position + 3)
        end = position + 2 + size
        standalone = tf.logical_or(
            tf.equal(marker, 0x01),
            tf.logical_and(marker >= 0xD0, marker <= 0xD7),
        )
        fill = tf.equal(marker, 0xFF)
        short = position + 4 > length
        bad = tf.reduce_any(tf.stack([
            tf.not_equal(lead, 0xFF),
            tf.logical_and(tf.logical_not(fill), tf.logical_and(
                tf.logical_not(standalone), tf.logical_or(short, tf.logical_or(
                    size < 2, end > length)))),
            tf.equal(marker, 0x00), tf.equal(marker, 0xD8),
            tf.equal(marker, 0xD9),
        ]))
        is_sof = tf.reduce_any(tf.equal(marker, sof_markers))
        count = _byte(contents, position + 9)
        height = _byte(contents, position + 5) * 256 + _byte(contents, position + 6)
        width = _byte(contents, position + 7) * 256 + _byte(contents, position + 8)
        sof_ok = tf.reduce_all(tf.stack([
            height > 0, width > 0, tf.equal(size, 8 + 3 * count),
            tf.reduce_any(tf.equal(count, [1, 3, 4])),
        ]))
        bad = tf.logical_or(bad, tf.logical_and(is_sof, tf.logical_not(sof_ok)))
        is_sos = tf.equal(marker, 0xDA)
        ok = tf.logical_and(ok, tf.logical_not(bad))
        ok = tf.logical_and(ok, tf.logical_or(tf.logical_not(is_sos), seen_sof))
        done = tf.reduce_any(tf.stack([bad, is_sos]))
        step_size = tf.where(fill, 1, tf.where(standalone, 2, 2 + size))
        return (position + step_size, done, ok,
                tf.logical_or(seen_sof, is_sof), steps + 1)

    # A header that reaches no scan within the step budget is corrupt.
    _, done, ok, _, _ = tf.while_loop(
        keep_going,
        step,
        (tf.constant(2), tf.constant(False), tf.constant(True),
         tf.constant(False), tf.constant(0)),
    )
    return tf.logical_and(ok, done)
