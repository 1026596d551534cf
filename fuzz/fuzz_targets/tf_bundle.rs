//! TensorFlow tensor bundles: the LevelDB-format `.index` table (footer, block handles,
//! prefix-compressed entries, `BundleEntryProto`s) and the slicing of tensors out of a data
//! shard. The input is both the index and its one shard.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fido::weights::tf::read_index(data);
    let mut shard = |_id: u64, _shards: u64| Ok::<_, fido::Error>(data.to_vec());
    if let Ok((report, tensors)) = fido::weights::tf::read_bundle(data, &mut shard) {
        assert_eq!(report.tensors, tensors.len());
        for (_, shape, bytes) in &tensors {
            assert_eq!(bytes.len(), 4 * shape.iter().product::<usize>());
        }
    }
});
