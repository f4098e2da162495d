//! Only the `planning` benchmark lives here (benches/planning.rs).
