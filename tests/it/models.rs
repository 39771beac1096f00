//! Execution providers and finding ONNX Runtime.

use crate::common::*;

#[test]
fn cuda_provider_fails_clearly_instead_of_falling_back() {
    // This machine's ONNX Runtime is the CPU build: `--provider cuda` must fail, never run on
    // the CPU silently. (On a CUDA machine with the CUDA build, see benches/gpu.sh.)
    if std::env::var_os("SEGSCORE_TEST_HAS_CUDA").is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &[row("g", 0, 0.1, &[1, 2])]);
    let out = tmp.path().join("out");
    let o = run(&[&input], &demo_model(), &out, &["--provider", "cuda"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("execution provider cuda") && err.contains("could not be registered"),
        "{err}"
    );
    assert!(err.contains("fetch-ort.sh --cuda"), "says how to get it: {err}");
    assert_no_output(&out);
    // auto falls back to the CPU, and says so in the summary.
    run_ok(&[&input], &demo_model(), &out, &["--provider", "auto"]);
    assert_eq!(summary(&out)["provider"], "cpu");
}

#[test]
fn missing_onnxruntime_library_says_how_to_get_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.parquet");
    write_rows(&input, &[row("g", 0, 0.1, &[1, 2])]);
    let out = tmp.path().join("out");
    let o = std::process::Command::new(BIN)
        .args([
            "run",
            "-i",
            input.to_str().unwrap(),
            "-m",
            demo_model().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .env("ORT_DYLIB_PATH", tmp.path().join("libonnxruntime.so.0"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("ORT_DYLIB_PATH") && err.contains("fetch-ort.sh"),
        "{err}"
    );
    assert_no_output(&out);
}
