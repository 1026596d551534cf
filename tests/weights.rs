//! Weights I/O: the safetensors loader and the PyTorch checkpoint converter, against fixtures
//! written by PyTorch itself (tools/make_pth_fixtures.py), plus a robustness property test
//! over truncated and corrupted checkpoints.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use fido::weights::{
    bf16_to_f32, convert, convert_pytorch, f16_to_f32, read_pytorch_checkpoint, CheckpointFormat,
    ConvertReport, TorchDType, WeightFile,
};
use fido::Error;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/weights")
        .join(name)
}

/// A fresh path in cargo's per-test scratch directory.
fn scratch(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("weights-{}-{n}-{name}", std::process::id()))
}

fn error_text(result: fido::Result<impl std::fmt::Debug>) -> String {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Converts `checkpoint` and checks every float tensor against python's f32 copy bit for bit,
/// with the same names and nothing else written; `convert` reads it as a PyTorch checkpoint.
fn check_conversion(path: &Path, format: CheckpointFormat, state_dict_path: Option<&str>) {
    let checkpoint = path.display();
    let out = scratch("converted.safetensors");
    let ConvertReport::PyTorch(report) = convert(path, &out).unwrap() else {
        panic!("{checkpoint} is not a TensorFlow checkpoint");
    };
    assert_eq!(report.format, format);
    assert!(
        report
            .to_string()
            .starts_with(&format!("{format} checkpoint: wrote ")),
        "{report}"
    );
    assert_eq!(report.state_dict_path.as_deref(), state_dict_path);

    let expected = WeightFile::open(fixture("expected.safetensors")).unwrap();
    let converted = WeightFile::open(&out).unwrap();
    let mut expected_names = expected.names();
    expected_names.sort();
    let mut converted_names = converted.names();
    converted_names.sort();
    assert_eq!(converted_names, expected_names, "{checkpoint}");
    for name in expected.names() {
        assert_eq!(converted.dtype(name).unwrap(), safetensors::Dtype::F32);
        assert_eq!(
            converted.shape(name).unwrap(),
            expected.shape(name).unwrap(),
            "{checkpoint}: {name}"
        );
        let want: Vec<u32> = expected
            .get_f32(name)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let got: Vec<u32> = converted
            .get_f32(name)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(got, want, "{checkpoint}: {name}");
    }
    // The one integer buffer is skipped and says so.
    assert_eq!(
        report.skipped,
        vec![("bn.num_batches_tracked".to_string(), "int64 tensor".to_string())],
        "{checkpoint}"
    );
    assert_eq!(report.written.len(), expected.names().len());
    let stored: Vec<(&str, TorchDType)> = report.written.iter().map(|(n, _, d)| (n.as_str(), *d)).collect();
    for (name, dtype) in [
        ("half.weight", TorchDType::F16),
        ("bf16.weight", TorchDType::BF16),
        ("double.weight", TorchDType::F64),
        ("fc.weight", TorchDType::F32),
    ] {
        assert!(
            stored.contains(&(name, dtype)),
            "{checkpoint}: {name} should come from {dtype}"
        );
    }
    let parameters: usize = expected
        .names()
        .iter()
        .map(|n| expected.shape(n).unwrap().iter().product::<usize>())
        .sum();
    assert_eq!(report.parameters, parameters as u64);
    assert_eq!(report.output_bytes, std::fs::metadata(&out).unwrap().len());
    std::fs::remove_file(out).ok();
}

#[test]
fn zip_checkpoint_converts_exactly() {
    check_conversion(&fixture("plain_zip.pt"), CheckpointFormat::Zip, None);
}

/// `plain_zip.pt` with every member written again with `method`.
fn rezipped(method: zip::CompressionMethod) -> Vec<u8> {
    let bytes = std::fs::read(fixture("plain_zip.pt")).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).unwrap();
        writer.start_file(member.name(), options).unwrap();
        std::io::copy(&mut member, &mut writer).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn deflated_zip_checkpoint_converts_exactly() {
    let path = scratch("deflated.pt");
    std::fs::write(&path, rezipped(zip::CompressionMethod::Deflated)).unwrap();
    check_conversion(&path, CheckpointFormat::Zip, None);
    std::fs::remove_file(path).ok();
}

/// Sets the 32-bit field at `field` in the central-directory record of the member whose name
/// ends with `suffix`.
fn patch_central(bytes: &mut [u8], suffix: &str, field: usize, value: u32) {
    let at = (0..bytes.len() - 46)
        .find(|&at| {
            let name_len = u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]) as usize;
            bytes[at..].starts_with(b"PK\x01\x02")
                && bytes[at + 46..at + 46 + name_len].ends_with(suffix.as_bytes())
        })
        .unwrap_or_else(|| panic!("no central record for `{suffix}`"));
    bytes[at + field..at + field + 4].copy_from_slice(&value.to_le_bytes());
}

const COMPRESSED_SIZE: usize = 20;
const UNCOMPRESSED_SIZE: usize = 24;

/// Size fields that lie give a one-line error before anything of that size is allocated.
#[test]
fn zip_size_fields_are_checked_before_allocating() {
    let stored = std::fs::read(fixture("plain_zip.pt")).unwrap();
    let deflated = rezipped(zip::CompressionMethod::Deflated);
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    let mut claim = |what, base: &Vec<u8>, member, fields: &[usize], value, expect| {
        let mut bytes = base.clone();
        for &field in fields {
            patch_central(&mut bytes, member, field, value);
        }
        cases.push((what, bytes, expect));
    };
    let huge = 0xFFFF_FFF0;
    claim(
        "stored, 4 GiB uncompressed",
        &stored,
        "data/0",
        &[UNCOMPRESSED_SIZE],
        huge,
        "data/0",
    );
    claim(
        "stored, 4 GiB both",
        &stored,
        "data.pkl",
        &[COMPRESSED_SIZE, UNCOMPRESSED_SIZE],
        huge,
        "data.pkl",
    );
    claim(
        "deflated, 4 GiB uncompressed",
        &deflated,
        "data.pkl",
        &[UNCOMPRESSED_SIZE],
        huge,
        "data.pkl",
    );
    claim(
        "deflated, too small",
        &deflated,
        "data.pkl",
        &[UNCOMPRESSED_SIZE],
        100,
        "data.pkl",
    );
    // A real bomb: 16 MiB of zeros deflate to a few kilobytes.
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    writer.start_file("bomb/data.pkl", options).unwrap();
    std::io::Write::write_all(&mut writer, &vec![0u8; 16 << 20]).unwrap();
    cases.push((
        "deflate bomb",
        writer.finish().unwrap().into_inner(),
        "more than the checkpoint can hold",
    ));
    for (what, bytes, expect) in cases {
        let message = error_text(read_pytorch_checkpoint(&bytes));
        assert!(
            message.contains(expect) && !message.contains('\n'),
            "{what}: {message}"
        );
    }
}

#[test]
fn legacy_checkpoint_converts_exactly() {
    check_conversion(&fixture("plain_legacy.pt"), CheckpointFormat::Legacy, None);
}

#[test]
fn nested_zip_checkpoint_strips_module_prefix() {
    check_conversion(
        &fixture("nested_zip.pt"),
        CheckpointFormat::Zip,
        Some("state_dict"),
    );
    let checkpoint = read_pytorch_checkpoint(&std::fs::read(fixture("nested_zip.pt")).unwrap()).unwrap();
    assert_eq!(checkpoint.stripped_prefix.as_deref(), Some("module."));
}

#[test]
fn nested_legacy_checkpoint_strips_module_prefix() {
    check_conversion(
        &fixture("nested_legacy.pt"),
        CheckpointFormat::Legacy,
        Some("state_dict"),
    );
    let checkpoint = read_pytorch_checkpoint(&std::fs::read(fixture("nested_legacy.pt")).unwrap()).unwrap();
    assert_eq!(checkpoint.stripped_prefix.as_deref(), Some("module."));
}

#[test]
fn plain_pickle_of_tensors_converts_exactly() {
    check_conversion(&fixture("plain_pickle.pt"), CheckpointFormat::Pickle, None);
}

#[test]
fn reader_keeps_stored_dtypes_and_order() {
    for file in ["plain_zip.pt", "plain_legacy.pt", "plain_pickle.pt"] {
        let checkpoint = read_pytorch_checkpoint(&std::fs::read(fixture(file)).unwrap()).unwrap();
        let names: Vec<&str> = checkpoint.tensors.iter().map(|t| t.name.as_str()).collect();
        // The state_dict's insertion order, as the fixture script wrote it.
        assert_eq!(
            names,
            [
                "conv.weight",
                "conv.bias",
                "bn.running_mean",
                "bn.num_batches_tracked",
                "half.weight",
                "bf16.weight",
                "double.weight",
                "fc.weight",
                "permuted",
                "shared.head",
                "shared.tail",
                "scale",
                "expanded"
            ],
            "{file}"
        );
        let counter = &checkpoint.tensors[3];
        assert_eq!(
            (counter.dtype, counter.shape.as_slice()),
            (TorchDType::I64, &[][..])
        );
        assert_eq!(counter.data, 7i64.to_le_bytes());
        assert!(counter.to_f32().is_none());
        let half = &checkpoint.tensors[4];
        assert_eq!(
            (half.dtype, half.shape.as_slice(), half.data.len()),
            (TorchDType::F16, &[3, 5][..], 30)
        );
        assert_eq!(checkpoint.tensors[8].shape, [4, 2, 3]);
    }
}

#[test]
fn safetensors_widens_f16_and_bf16_exactly() {
    let file = WeightFile::open(fixture("mixed_dtypes.safetensors")).unwrap();
    let bits = |name: &str| -> Vec<u32> { file.get_f32(name).unwrap().iter().map(|v| v.to_bits()).collect() };
    assert_eq!(bits("as_f16"), bits("f16_in_f32"));
    assert_eq!(bits("as_bf16"), bits("bf16_in_f32"));
    assert_eq!(file.expect("as_f16", &[2, 3]).unwrap().len(), 6);
    let message = error_text(file.get_f32("counts"));
    assert!(
        message.contains("`counts`") && message.contains("I64"),
        "{message}"
    );
}

#[test]
fn half_conversions_match_the_ieee_definitions() {
    // Every binary16 pattern against value = (-1)^s · 2^(e-15) · (1 + m/1024), subnormals
    // 2^-14 · m/1024, computed in f64.
    for bits in 0..=u16::MAX {
        let (sign, exponent, mantissa) = (bits >> 15, (bits >> 10) & 0x1F, (bits & 0x3FF) as f64);
        let magnitude = match exponent {
            0 => mantissa / 1024.0 * 2f64.powi(-14),
            0x1F if mantissa == 0.0 => f64::INFINITY,
            0x1F => f64::NAN,
            e => (1.0 + mantissa / 1024.0) * 2f64.powi(e as i32 - 15),
        };
        let want = if sign == 1 { -magnitude } else { magnitude };
        let got = f16_to_f32(bits);
        if want.is_nan() {
            assert!(got.is_nan(), "{bits:#06x}");
        } else {
            assert_eq!(got.to_bits(), (want as f32).to_bits(), "{bits:#06x}");
        }
    }
    assert_eq!(bf16_to_f32(0x3FC0), 1.5);
    assert_eq!(bf16_to_f32(0xC040), -3.0);
}

#[test]
fn expect_names_the_tensor_and_both_shapes() {
    let file = WeightFile::open(fixture("expected.safetensors")).unwrap();
    let message = error_text(file.expect("conv.weight", &[2, 3, 5, 5]));
    assert!(
        message.contains("`conv.weight`")
            && message.contains("[2, 3, 3, 3]")
            && message.contains("[2, 3, 5, 5]"),
        "{message}"
    );
    let message = error_text(file.get_f32("no.such.tensor"));
    assert!(message.contains("`no.such.tensor`"), "{message}");
}

#[test]
fn check_names_lists_missing_and_unexpected() {
    let file = WeightFile::open(fixture("expected.safetensors")).unwrap();
    let all = file.names();
    file.check_names(&all).unwrap();

    let mut wanted: Vec<&str> = all
        .iter()
        .copied()
        .filter(|n| *n != "scale" && *n != "permuted")
        .collect();
    wanted.push("classifier.weight");
    let message = error_text(file.check_names(&wanted));
    assert!(message.contains("1 missing: `classifier.weight`"), "{message}");
    assert!(message.contains("2 unexpected:"), "{message}");
    assert!(
        message.contains("`scale`") && message.contains("`permuted`"),
        "{message}"
    );

    // Long lists are cut at ten names.
    let many: Vec<String> = (0..25).map(|i| format!("layer{i}.weight")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let message = error_text(file.check_names(&many));
    assert!(
        message.contains("25 missing:") && message.contains("and 15 more"),
        "{message}"
    );
    assert!(!message.contains("`layer10.weight`"), "{message}");
}

#[test]
fn broken_safetensors_files_are_clear_errors() {
    let message = error_text(WeightFile::open(scratch("absent.safetensors")));
    assert!(message.contains("cannot open weights"), "{message}");

    let good = std::fs::read(fixture("expected.safetensors")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() - 7].to_vec()),
        ("header cut", good[..40].to_vec()),
        (
            "huge header length",
            [&u64::MAX.to_le_bytes()[..], &good[8..]].concat(),
        ),
        ("not json", [&good[..8], &vec![b'x'; good.len() - 8][..]].concat()),
    ];
    for (what, bytes) in cases {
        let path = scratch("broken.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let result = WeightFile::open(&path);
        assert!(matches!(result, Err(Error::Weights(_))), "{what}");
        let message = error_text(result);
        assert!(message.contains("broken.safetensors"), "{what}: {message}");
        std::fs::remove_file(path).ok();
    }
}

#[test]
fn non_checkpoints_are_rejected() {
    for (what, bytes) in [
        ("empty", Vec::new()),
        ("text", b"hello world".to_vec()),
        (
            "safetensors",
            std::fs::read(fixture("expected.safetensors")).unwrap(),
        ),
        // A valid pickle that is not a torch checkpoint: protocol 2, the int 5, STOP.
        ("plain pickle", vec![0x80, 0x02, b'K', 5, b'.']),
    ] {
        let message = error_text(read_pytorch_checkpoint(&bytes));
        assert!(!message.is_empty(), "{what}");
    }
    let message = error_text(convert_pytorch(
        &scratch("absent.pth"),
        &scratch("out.safetensors"),
    ));
    assert!(message.contains("absent.pth"), "{message}");
}

#[test]
fn oversized_views_are_refused_not_allocated() {
    // One stored float viewed as a billion (stride 0): materialising it would take 4 GB.
    let message = error_text(read_pytorch_checkpoint(
        &std::fs::read(fixture("huge_view.pt")).unwrap(),
    ));
    assert!(
        message.contains("`huge`") && message.contains("more data than the checkpoint"),
        "{message}"
    );
}

#[test]
fn deeply_nested_pickles_drop_without_recursion() {
    // A million nested 1-tuples, then a list chain built through the memo: dropping either
    // recursively would overflow the stack.
    let mut tuples = vec![0x80, 0x02, b'N'];
    tuples.extend(std::iter::repeat_n(0x85, 1_000_000));
    tuples.push(b'.');
    let mut lists = vec![0x80, 0x02, b']', b'q', 0];
    for _ in 0..300_000 {
        // new = []; memo[0].append(new); memo[0] = new; only the first list stays on the stack.
        lists.extend([b']', b'q', 1, b'h', 0, b'h', 1, b'a', b'0', b'q', 0, b'0']);
    }
    lists.push(b'.');
    for (what, bytes) in [("nested tuples", tuples), ("list chain", lists)] {
        let message = error_text(read_pytorch_checkpoint(&bytes));
        assert!(message.contains("state_dict"), "{what}: {message}");
    }
}

/// Reads `bytes` and turns a panic into a test failure naming the case.
fn read_without_panic(bytes: &[u8], case: &str) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _ = read_pytorch_checkpoint(bytes);
    }));
    assert!(outcome.is_ok(), "reader panicked on {case}");
}

/// Truncations and byte mutations of real checkpoints must give Ok or Err, never a panic, an
/// out-of-bounds read or a runaway allocation.
#[test]
fn corrupted_checkpoints_never_panic() {
    let mut rng = Rng(0x5EED_F1D0);
    for file in [
        "plain_zip.pt",
        "plain_legacy.pt",
        "nested_zip.pt",
        "nested_legacy.pt",
    ] {
        let good = std::fs::read(fixture(file)).unwrap();
        read_pytorch_checkpoint(&good).unwrap();
        for i in 0..200 {
            let len = rng.below(good.len());
            read_without_panic(
                &good[..len],
                &format!("{file} truncated to {len} bytes (case {i})"),
            );
        }
        for i in 0..400 {
            let mut bytes = good.clone();
            let edits = 1 + rng.below(4);
            for _ in 0..edits {
                let at = rng.below(bytes.len());
                // Half the edits target the pickle and zip headers, where structure lives.
                let at = if rng.below(2) == 0 { at % 1200 } else { at };
                bytes[at] = match rng.below(4) {
                    0 => 0,
                    1 => 0xFF,
                    _ => rng.below(256) as u8,
                };
            }
            read_without_panic(
                &bytes,
                &format!("{file} with {edits} random byte edits (case {i})"),
            );
        }
    }
}

/// A tiny xorshift generator: reproducible cases with no extra crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
