#!/usr/bin/env bash
# Regenerates the committed audio fixtures under fixtures/audio/ (tests read only those).
#
# Tools (fixture generation only, never needed at runtime):
#   apt-get install -y espeak-ng sox ffmpeg
# A ~5 s espeak-ng utterance (22.05 kHz mono) is turned into every container/codec the
# decoder must accept, plus the inputs that must be refused or warned about. Outputs are
# small (mono, short) and made bit-reproducible where the encoder allows (-fflags +bitexact).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=fixtures/audio
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
FF=(ffmpeg -hide_banner -loglevel error -y)
BITEXACT=(-map_metadata -1 -fflags +bitexact -flags:a +bitexact)

TEXT="The quick brown fox jumps over the lazy dog. Talking heads move their lips in time with speech."
espeak-ng -v en-us -s 175 -w "$TMP/speech_22k.wav" "$TEXT"
# The utterance is ~5.8 s long: cut it to exactly 5.0 s so every variant has the same duration.
sox -R "$TMP/speech_22k.wav" "$TMP/speech5.wav" trim 0 5.0

# 16 kHz mono 16-bit WAV: the reference loads it without resampling, ours must be bit-exact.
sox -R "$TMP/speech5.wav" -b 16 -r 16000 -c 1 "$OUT/speech_16k.wav"
# Native-rate (22.05 kHz) variants, one per codec the decoder supports.
sox -R "$TMP/speech5.wav" -b 16 "$OUT/speech_22k.flac"
"${FF[@]}" -i "$TMP/speech5.wav" "${BITEXACT[@]}" -c:a libmp3lame -b:a 32k "$OUT/speech_22k.mp3"
"${FF[@]}" -i "$TMP/speech5.wav" "${BITEXACT[@]}" -c:a libvorbis -q:a 1 "$OUT/speech_22k.ogg"
# AAC-LC in MP4: the encoder primes 1024 samples; the file's edit list says to skip them.
"${FF[@]}" -i "$TMP/speech5.wav" "${BITEXACT[@]}" -c:a aac -b:a 40k "$OUT/speech_22k.m4a"
# 1 s stereo 44.1 kHz WAV with different channels: tests downmix (mean) + resampling.
sox -R "$TMP/speech5.wav" -r 44100 "$TMP/l.wav" trim 0.5 1.0
sox -R "$TMP/l.wav" "$TMP/r.wav" vol 0.5 reverse
sox -R -M "$TMP/l.wav" "$TMP/r.wav" -b 16 "$OUT/stereo_44k.wav"

# Inputs that must be refused or warned about.
sox -R -D -n -r 16000 -c 1 -b 16 "$OUT/silence_16k.wav" trim 0 0.5         # all-silent: valid, warns
sox -R "$OUT/speech_16k.wav" "$OUT/tiny_16k.wav" trim 1.2 0.02 # 20 ms < one 25 fps frame
sox -R -n -r 16000 -c 1 -b 16 "$OUT/empty.wav" trim 0 0                    # header only, no samples
"${FF[@]}" -i "$TMP/speech5.wav" -t 0.3 "${BITEXACT[@]}" -c:a libopus -b:a 16k "$OUT/opus_unsupported.ogg"
printf 'this is not audio at all\n' > "$OUT/not_audio.wav"
# Damaged files, cut from a 1 s FLAC / the M4A (deterministic byte surgery, no randomness).
sox -R "$TMP/speech5.wav" -b 16 "$TMP/one.flac" trim 1.0 1.0
head -c 15000 "$TMP/one.flac" > "$OUT/truncated.flac"                   # cut short: warns
head -c 13000 "$OUT/speech_22k.m4a" > "$OUT/truncated.m4a"              # moov (at the end) lost
sox -R "$TMP/speech5.wav" -r 16000 -b 16 "$TMP/short.wav" trim 1.0 0.1
cp "$TMP/short.wav" "$OUT/badcodec.wav"                                 # WAVE format tag 0x1234
printf '\x34\x12' | dd of="$OUT/badcodec.wav" bs=1 seek=20 conv=notrunc status=none

ls -l "$OUT"
du -sh "$OUT"
