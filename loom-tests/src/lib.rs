//! loom models of tlscache-core's races. The models live in `tests/` and
//! compile only with `--cfg loom --cfg crossbeam_loom`; see `tools/loom`.
