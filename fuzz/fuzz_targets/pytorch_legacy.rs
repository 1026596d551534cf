//! PyTorch legacy checkpoints (before 1.6: consecutive pickles, then raw storages) and
//! plain pickles of tensors, through the allow-listed pickle VM. Seeded with the legacy and
//! plain-pickle fixtures; the same reader as `pytorch_zip`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(checkpoint) = fido::weights::read_pytorch_checkpoint(data) {
        for tensor in &checkpoint.tensors {
            assert_eq!(tensor.data.len(), tensor.numel() * tensor.dtype.size());
            let _ = tensor.to_f32();
        }
    }
});
