#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    changeling_fuzz::exceptions(data);
});
