#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| changeling_fuzz::spill_decoder(data));
