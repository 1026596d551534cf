//! PyTorch zip checkpoints (`torch.save` since 1.6): the zip container, `data.pkl` through
//! the pickle VM, storages and strided views. Seeded with zip fixtures; the same reader as
//! `pytorch_legacy`, which starts from the legacy and plain-pickle fixtures.
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
