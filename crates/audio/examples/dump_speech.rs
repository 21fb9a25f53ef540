//! Debug helper: decodes an audio file like `load_speech` and writes the 16 kHz mono samples as
//! raw little-endian f32 (for comparing with librosa by hand).
//!
//! Run: `cargo run -p sadtalker-audio --example dump_speech -- IN OUT.f32`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (input, output) = match args.as_slice() {
        [_, i, o] => (i, o),
        _ => return Err("usage: dump_speech IN OUT.f32".into()),
    };
    let speech = sadtalker_audio::load_speech(input, &sadtalker_audio::LoadOptions::default())?;
    let bytes: Vec<u8> = speech.samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(output, bytes)?;
    eprintln!("{:?} {:?}", speech.source, speech.warnings);
    Ok(())
}
