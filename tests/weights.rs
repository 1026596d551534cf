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

// ---------------------------------------------------------------------------------------
// Hostile files: sizes claimed by the file are checked before anything is allocated, deep
// nesting does not overflow the stack, and work stays proportional to the file's size.
// The regressions found by the fuzz targets (fuzz/, docs/RELIABILITY.md) are here too.
// ---------------------------------------------------------------------------------------

/// A safetensors file of `header` (JSON) and `data` bytes.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

#[track_caller]
fn one_line_error(result: fido::Result<impl std::fmt::Debug>, needle: &str) {
    let message = error_text(result);
    assert!(message.contains(needle), "expected `{needle}` in: {message}");
    assert!(!message.contains('\n'), "one line: {message}");
}

#[test]
fn a_safetensors_header_claiming_a_4_tb_tensor_is_refused_before_allocating() {
    // 10^12 f32 elements, 4 TB: its byte range runs far past the file's 8 data bytes.
    let honest_range = safetensors_bytes(
        r#"{"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}"#,
        &[0; 8],
    );
    // The same shape over the 8 bytes the file has: the shape and range disagree.
    let short_range = safetensors_bytes(
        r#"{"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,8]}}"#,
        &[0; 8],
    );
    // A shape whose element count overflows 64 bits.
    let overflow = safetensors_bytes(
        r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#,
        &[0; 8],
    );
    for (what, bytes) in [
        ("4 TB range", honest_range),
        ("4 TB shape", short_range),
        ("overflowing shape", overflow),
    ] {
        one_line_error(
            WeightFile::from_bytes("hostile.safetensors", bytes.clone()),
            "hostile.safetensors",
        );
        let path = scratch("hostile.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let result = WeightFile::open(&path);
        assert!(matches!(result, Err(Error::Weights(_))), "{what}");
        one_line_error(result, "is not a valid safetensors file");
        std::fs::remove_file(path).ok();
    }
    // A well-formed file held in memory reads like the same file on disk.
    let good = std::fs::read(fixture("expected.safetensors")).unwrap();
    let from_memory = WeightFile::from_bytes("expected.safetensors", good).unwrap();
    let from_disk = WeightFile::open(fixture("expected.safetensors")).unwrap();
    assert_eq!(from_memory.names(), from_disk.names());
    for name in from_disk.names() {
        assert_eq!(
            from_memory.get_f32(name).unwrap(),
            from_disk.get_f32(name).unwrap()
        );
    }
}

/// The zip entry that claims gigabytes is `zip_size_fields_are_checked_before_allocating`
/// above: 4 GiB size fields and a deflate bomb are refused against a budget of four times
/// the file plus 1 MiB, before the member is read.
///
/// Pickles nested 100,000 levels deep through every container the VM builds: reading and
/// dropping them must not recurse (the test thread has cargo's 2 MiB stack).
#[test]
fn pickles_nested_100_000_deep_neither_overflow_nor_recurse_on_drop() {
    const DEPTH: usize = 100_000;
    let proto = [0x80, 0x02];
    // {1: {1: ... {1: None}}} through MARK ... DICT.
    let mut dicts = proto.to_vec();
    for _ in 0..DEPTH {
        dicts.extend([b'(', b'K', 1]);
    }
    dicts.push(b'N');
    dicts.extend(std::iter::repeat_n(b'd', DEPTH));
    dicts.push(b'.');
    // [[[...[None]...]]] through MARK ... LIST.
    let mut lists = proto.to_vec();
    lists.extend(std::iter::repeat_n(b'(', DEPTH));
    lists.push(b'N');
    lists.extend(std::iter::repeat_n(b'l', DEPTH));
    lists.push(b'.');
    // X(X(...X(None)...)): opaque objects of an unknown class, each memoised, so every level
    // is also held by the memo when the machine is dropped.
    let mut objects = proto.to_vec();
    objects.extend(b"c__main__\nX\n");
    objects.extend([b'q', 0]);
    for _ in 1..DEPTH {
        objects.extend([b'h', 0]);
    }
    objects.push(b'N');
    for _ in 0..DEPTH {
        objects.extend([0x85, b'R', 0x94]);
    }
    objects.push(b'.');
    // Objects nested through their BUILD state: o = X(); o.__setstate__(inner).
    let mut states = proto.to_vec();
    states.extend(b"c__main__\nX\n");
    states.extend([b'q', 0]);
    for _ in 0..DEPTH {
        states.extend([b'h', 0, b')', b'R']);
    }
    states.push(b'N');
    states.extend(std::iter::repeat_n(b'b', DEPTH));
    states.push(b'.');
    for (what, bytes, needle) in [
        ("dicts", dicts, "no tensors found"),
        ("lists", lists, "expected a state_dict"),
        ("objects", objects, "object of __main__.X"),
        ("states", states, "object of __main__.X"),
    ] {
        let message = error_text(read_pytorch_checkpoint(&bytes));
        assert!(message.contains(needle), "{what}: {message}");
        assert!(!message.contains('\n'), "{what}: {message}");
    }
}

/// A protocol 2 pickle of `{name: tensor}` for every name, each a float32 view of the one
/// storage `0` of `elements` elements: `(size, stride)` as given.
fn state_dict_pickle(names: &[String], size: &[u64], stride: &[u64], elements: u64) -> Vec<u8> {
    fn int(out: &mut Vec<u8>, v: u64) {
        out.push(b'J');
        out.extend((v as i32).to_le_bytes());
    }
    fn text(out: &mut Vec<u8>, s: &str) {
        out.push(b'X');
        out.extend((s.len() as u32).to_le_bytes());
        out.extend(s.as_bytes());
    }
    let mut p = vec![0x80, 0x02, b'}', b'('];
    for name in names {
        text(&mut p, name);
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
        p.push(b'(');
        // The persistent id: ("storage", FloatStorage, "0", "cpu", elements).
        p.push(b'(');
        text(&mut p, "storage");
        p.extend(b"ctorch\nFloatStorage\n");
        text(&mut p, "0");
        text(&mut p, "cpu");
        int(&mut p, elements);
        p.extend([b't', b'Q']);
        int(&mut p, 0);
        for dims in [size, stride] {
            p.push(b'(');
            for &d in dims {
                int(&mut p, d);
            }
            p.push(b't');
        }
        p.push(0x89); // requires_grad = False
        p.extend(b"ccollections\nOrderedDict\n)R");
        p.extend([b't', b'R']);
    }
    p.extend([b'u', b'.']);
    p
}

/// A zip checkpoint `archive/data.pkl` + `archive/data/0` (storage `0`).
fn zip_checkpoint(pickle: &[u8], storage: &[u8]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [("archive/data.pkl", pickle), ("archive/data/0", storage)] {
        writer.start_file(name, options).unwrap();
        std::io::Write::write_all(&mut writer, bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn a_hand_written_zip_checkpoint_reads_back() {
    // The builders below are right: a 2×3 view of a 6-float storage, transposed.
    let storage: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let pickle = state_dict_pickle(&["t".to_string()], &[3, 2], &[1, 3], 6);
    let checkpoint = read_pytorch_checkpoint(&zip_checkpoint(&pickle, &storage)).unwrap();
    assert_eq!(checkpoint.tensors.len(), 1);
    assert_eq!(checkpoint.tensors[0].shape, [3, 2]);
    assert_eq!(
        checkpoint.tensors[0].to_f32().unwrap(),
        [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    );
}

/// Work proportional to the file: a view of rank 100,018 (2^18 elements over eighteen axes of
/// length 2, then 100,000 of length 1) used to cost its rank for every element copied, about
/// 2.6·10^10 steps, and a name of 100,000 `module.` prefixes a copy of the whole name for every
/// prefix removed (70 GB of copying). Both are linear now; the test takes a fraction of a
/// second.
#[test]
fn huge_ranks_and_prefix_chains_cost_time_linear_in_the_file() {
    const BITS: usize = 18;
    let storage: Vec<u8> = (0..1u32 << BITS).flat_map(|i| (i as f32).to_le_bytes()).collect();
    // Axis k has stride 2^k: the transpose of the storage's row-major order.
    let mut size = vec![2u64; BITS];
    let mut stride: Vec<u64> = (0..BITS).map(|k| 1 << k).collect();
    size.extend(std::iter::repeat_n(1, 100_000));
    stride.extend(std::iter::repeat_n(7, 100_000));
    let name = format!("{}w", "module.".repeat(100_000));
    let pickle = state_dict_pickle(&[name], &size, &stride, 1 << BITS);
    let started = std::time::Instant::now();
    let checkpoint = read_pytorch_checkpoint(&zip_checkpoint(&pickle, &storage)).unwrap();
    let elapsed = started.elapsed();
    let tensor = &checkpoint.tensors[0];
    assert_eq!(tensor.name, "w");
    assert_eq!(
        checkpoint.stripped_prefix.as_deref().map(str::len),
        Some(100_000 * 7)
    );
    assert_eq!(tensor.shape.len(), BITS + 100_000);
    // Row-major element r sits at storage index bit-reverse(r).
    let values = tensor.to_f32().unwrap();
    for r in [0usize, 1, 2, 3, 12345, (1 << BITS) - 1] {
        let want = (r as u32).reverse_bits() >> (32 - BITS);
        assert_eq!(values[r], want as f32, "element {r}");
    }
    assert!(elapsed < std::time::Duration::from_secs(20), "took {elapsed:?}");
}

/// One embedded storage (`torch.storage._load_from_bytes`, as a plain pickle of tensors holds
/// them) handed out by the memo many times is read once, not once per use: 20,000 uses of a
/// 1 MiB embedded checkpoint used to copy its storage 20,000 times (20 GiB, from a 1 MiB file).
#[test]
fn an_embedded_storage_reused_through_the_memo_is_read_once() {
    // plain_pickle.pt (protocol 2) writes the embedded legacy checkpoint as
    // _codecs.encode(text, "latin1"); the first BINUNICODE is that text.
    let good = std::fs::read(fixture("plain_pickle.pt")).unwrap();
    let at = good.iter().position(|&b| b == b'X').unwrap();
    let at = (at + 1..good.len())
        .find(|&i| good[i] == b'X' && good[i - 2..i] == [b'q', 6])
        .expect("the embedded checkpoint's text");
    let len = u32::from_le_bytes(good[at + 1..at + 5].try_into().unwrap()) as usize;
    let text = std::str::from_utf8(&good[at + 5..at + 5 + len]).unwrap();
    let mut inner: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
    // Its one storage is the tail: a u64 element count and the floats. Make it 1 MiB.
    let count = u64::from_le_bytes(inner[inner.len() - 224..inner.len() - 216].try_into().unwrap());
    assert_eq!(count, 54);
    inner.truncate(inner.len() - 224);
    inner.extend((1u64 << 18).to_le_bytes());
    inner.extend(vec![0u8; 4 << 18]);
    // [ _load_from_bytes(b), _load_from_bytes(b), ... ] with b memoised once.
    let mut p = vec![0x80, 0x02, b']', b'('];
    p.extend(b"ctorch.storage\n_load_from_bytes\n");
    p.extend([b'q', 0, b'B']);
    p.extend((inner.len() as u32).to_le_bytes());
    p.extend(&inner);
    p.extend([b'q', 1, 0x85, b'R']);
    for _ in 0..20_000 {
        p.extend([b'h', 0, b'h', 1, 0x85, b'R']);
    }
    p.extend([b'e', b'.']);
    let started = std::time::Instant::now();
    let message = error_text(read_pytorch_checkpoint(&p));
    let elapsed = started.elapsed();
    assert!(message.contains("found list of 20001"), "{message}");
    assert!(elapsed < std::time::Duration::from_secs(20), "took {elapsed:?}");
}

/// LevelDB-format varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A table block of `(shared, unshared key bytes, value)` entries, one restart point.
fn raw_block(entries: &[(u64, &[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (shared, key, value) in entries {
        varint(&mut out, *shared);
        varint(&mut out, key.len() as u64);
        varint(&mut out, value.len() as u64);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    out.extend(0u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out
}

/// A table: `data` (a block at offset 0), then an index block of `handles` (offset, size),
/// an empty metaindex and the footer.
fn tf_table(data: &[u8], handles: &[(u64, u64)]) -> Vec<u8> {
    let mut table = data.to_vec();
    table.extend([0u8; 5]);
    let values: Vec<Vec<u8>> = handles
        .iter()
        .map(|&(offset, size)| {
            let mut h = Vec::new();
            varint(&mut h, offset);
            varint(&mut h, size);
            h
        })
        .collect();
    let entries: Vec<(u64, &[u8], &[u8])> = values.iter().map(|v| (0, &b"k"[..], &v[..])).collect();
    let index_block = raw_block(&entries);
    let index_offset = table.len() as u64;
    table.extend(&index_block);
    table.extend([0u8; 5]);
    let meta = raw_block(&[]);
    let meta_offset = table.len() as u64;
    table.extend(&meta);
    table.extend([0u8; 5]);
    let mut footer = Vec::new();
    varint(&mut footer, meta_offset);
    varint(&mut footer, meta.len() as u64);
    varint(&mut footer, index_offset);
    varint(&mut footer, index_block.len() as u64);
    footer.resize(40, 0);
    footer.extend(0xdb47_7524_8b80_fb57u64.to_le_bytes());
    table.extend(footer);
    table
}

/// A TF bundle index can make the reader's work quadratic in its size in two ways, both
/// refused now in time linear in the file: an index listing one data block many times
/// (30,000 × a block of 10,000 entries would be 3·10^8 entries), and prefix-compressed keys
/// that reuse a long key for every entry (a 64 KiB key × 20,000 entries would be 1.3 GB).
#[test]
fn tf_bundle_indexes_cannot_expand_quadratically() {
    use fido::weights::tf::read_index;
    let entry: &[u8] = b"\x08\x01"; // dtype = DT_FLOAT
    let names: Vec<Vec<u8>> = (0..10_000).map(|i| format!("t{i:05}").into_bytes()).collect();
    let entries: Vec<(u64, &[u8], &[u8])> = names.iter().map(|n| (0, &n[..], entry)).collect();
    let data = raw_block(&entries);
    // Read once, the block is fine.
    let once = tf_table(&data, &[(0, data.len() as u64)]);
    assert_eq!(read_index(&once).unwrap().1.len(), 10_000);
    let repeated = tf_table(&data, &vec![(0, data.len() as u64); 30_000]);
    let started = std::time::Instant::now();
    let message = read_index(&repeated).unwrap_err();
    assert!(
        message.contains("data blocks adding up to more than the file"),
        "{message}"
    );

    let long_key = vec![b'k'; 64 << 10];
    let mut entries: Vec<(u64, &[u8], &[u8])> = vec![(0, &long_key[..], entry)];
    entries.extend(std::iter::repeat_n(
        (long_key.len() as u64, &b""[..], entry),
        20_000,
    ));
    let data = raw_block(&entries);
    let message = read_index(&tf_table(&data, &[(0, data.len() as u64)])).unwrap_err();
    assert!(message.contains("expand to more than 16 times"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));

    // And through the converter, the message names the file in one line.
    let dir = scratch("tf-hostile");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.index"), &repeated).unwrap();
    one_line_error(
        fido::weights::convert_tf_checkpoint(&dir.join("model"), &dir.join("out.safetensors")),
        "model.index` is not a TF bundle index: the index lists data blocks",
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Entries of a bundle that overlap in the shard (every tensor naming the whole shard) would
/// copy the shard once per entry; they are refused once the copies exceed the shard's size.
#[test]
fn tf_bundle_entries_cannot_copy_a_shard_more_than_once() {
    use fido::weights::tf::read_bundle;
    // BundleEntryProto: dtype 1, shape [1024], offset 0, size 4096.
    let mut entry = vec![
        0x08, 0x01, 0x12, 0x05, 0x12, 0x03, 0x08, 0x80, 0x08, 0x20, 0x00, 0x28,
    ];
    varint(&mut entry, 4096);
    let names: Vec<Vec<u8>> = (0..3).map(|i| format!("t{i}").into_bytes()).collect();
    let entries: Vec<(u64, &[u8], &[u8])> = names.iter().map(|n| (0, &n[..], &entry[..])).collect();
    let data = raw_block(&entries);
    let index = tf_table(&data, &[(0, data.len() as u64)]);
    let mut shard = |_: u64, _: u64| Ok::<_, Error>(vec![0u8; 4096]);
    let message = error_text(read_bundle(&index, &mut shard));
    assert!(
        message.contains("`t1`") && message.contains("more bytes than its shards hold"),
        "{message}"
    );
    // One such entry is an ordinary tensor.
    let index = tf_table(
        &raw_block(&entries[..1]),
        &[(0, raw_block(&entries[..1]).len() as u64)],
    );
    let (report, tensors) = read_bundle(&index, &mut shard).unwrap();
    assert_eq!((report.tensors, tensors[0].1.as_slice()), (1, &[1024][..]));
}

/// Images and manifests are untrusted files too; their hostile cases live here with the
/// weights'. A 1×65535 strip decodes to 196 KB, but scaling its short side to 256, as the
/// torchvision preprocessing does before its centre crop, made a 256×16.7M picture (12 GB);
/// the crop is now cut from the source first.
#[test]
fn an_extreme_aspect_ratio_image_prepares_in_bounded_memory() {
    use fido::imageio::{decode_rgb, prepare, Normalize, Resize};
    let resize = Resize::ShorterThenCentreCrop {
        shorter: 256,
        crop: 224,
    };
    let norm = Normalize {
        range: 255.0,
        mean: [0.0; 3],
        std: [1.0; 3],
    };
    for (w, h) in [(1u32, 65_535u32), (65_535, 1), (3, 40_000)] {
        // A ramp along the long axis: the centre crop sees values near the middle, 127.5.
        let long = w.max(h) as f64;
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let t = (x.max(y) as f64 / (long - 1.0) * 255.0).round() as u8;
            image::Rgb([t, 255 - t, 60])
        });
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let decoded = decode_rgb(&png, Path::new("strip.png")).unwrap();
        assert_eq!(decoded.dimensions(), (w, h));
        let prepared = prepare(&decoded, resize, &norm);
        assert_eq!((prepared.size, prepared.chw.len()), (224, 3 * 224 * 224));
        let plane = 224 * 224;
        for (c, want) in [(0, 127.5f32), (1, 127.5), (2, 60.0)] {
            let values = &prepared.chw[c * plane..(c + 1) * plane];
            assert!(
                values.iter().all(|v| (v - want).abs() <= 2.0),
                "{w}×{h} channel {c}: {:?}",
                values
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
            );
        }
        // Where the source pixels went is the same map as for the exact path.
        let s = &prepared.source_to_model;
        // As prepare computes it: the shorter side exactly, the longer rounded down.
        let scale = 256.0 / w.min(h) as f64;
        let (nw, nh) = if w <= h {
            (256.0, ((h as f64 * scale) as u32) as f64)
        } else {
            (((w as f64 * scale) as u32) as f64, 256.0)
        };
        assert_eq!((s.scale_x, s.scale_y), (nw / w as f64, nh / h as f64));
        assert_eq!(
            (s.offset_x, s.offset_y),
            (-((nw - 224.0) / 2.0).round(), -((nh - 224.0) / 2.0).round())
        );
    }
    let message = error_text(decode_rgb(b"\x89PNG\r\n\x1a\nnot really", Path::new("bad.png")));
    assert!(
        message.contains("bad.png") && !message.contains('\n'),
        "{message}"
    );
}

/// Manifest boxes must be finite numbers: `nan` and `inf` parse as floats but are no box.
#[test]
fn manifest_boxes_must_be_finite() {
    use fido::dataset::Manifest;
    use fido::eval::manifest::jobs_from_manifest;
    let image = |row: &fido::dataset::ManifestRow<'_>| Ok(PathBuf::from(row.file()));
    let manifest = |text: &str| Manifest::from_text(Path::new("m/manifest.csv"), text.to_string());
    let good = manifest("file,label,boxes_xyxy\nb.png,1,0 0 2 2\na.png,0,1 2 3 4;5 6 7 8\nc.png,2,\n");
    let jobs = jobs_from_manifest(&good, &image).unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["a.png", "b.png", "c.png"]);
    assert_eq!(jobs[0].boxes, [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]);
    for (text, needle) in [
        (
            "file,label,boxes\na.png,0,nan 0 1 1\n",
            "m/manifest.csv:2: box `nan 0 1 1` is not four finite numbers",
        ),
        (
            "file,label,boxes\na.png,0,0 0 inf 1\n",
            "is not four finite numbers",
        ),
        ("file,label,boxes\na.png,0,0 0 1\n", "is not four finite numbers"),
        ("file,label\na.png,x\n", "label `x` is not a class index"),
        ("file,label\na.png,1\na.png,2\n", "image `a.png` is listed twice"),
    ] {
        one_line_error(jobs_from_manifest(&manifest(text), &image), needle);
    }
}

/// Found by the `pytorch_zip` and `pytorch_legacy` fuzz targets (LeakSanitizer): a pickle can
/// make a container hold itself (`l = []; l.append(l)` through the memo, or a dict DUP'd into
/// its own SETITEM), and such a cycle was never freed. Every container a read makes is now
/// emptied when the read ends. 1,000 reads of a 1 MiB self-holding list used to leak 1 GiB.
#[test]
fn self_referencing_pickles_are_freed() {
    fn rss_bytes() -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }
    // l = []; l.append(l); d = {}; d[1] = d; l.append(d); l.append(1 MiB of bytes).
    let mut p = vec![0x80, 0x02, b']', b'q', 0, b'h', 0, b'a'];
    p.extend([b'}', b'q', 1, b'K', 1, b'h', 1, b's', b'a']);
    p.push(b'B');
    p.extend((1u32 << 20).to_le_bytes());
    p.extend(vec![7u8; 1 << 20]);
    p.extend([b'a', b'.']);
    let message = error_text(read_pytorch_checkpoint(&p));
    assert!(message.contains("found list of 3"), "{message}");
    let before = rss_bytes();
    for _ in 0..1000 {
        let _ = read_pytorch_checkpoint(&p);
    }
    if let (Some(before), Some(after)) = (before, rss_bytes()) {
        let grown = after.saturating_sub(before);
        assert!(grown < 512 << 20, "resident memory grew by {} MiB", grown >> 20);
    }
}
