//! `experiments`: the training loop and the ablation ladders (speed and accuracy), each rung
//! its own small binary in `src/bin/`, writing CSV, Markdown tables and SVG charts.
pub mod accuracy;
pub mod chart;
pub mod checkpoint;
pub mod config;
pub mod csvio;
pub mod ddp;
pub mod ddp_report;
pub mod docs;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod quant;
pub mod resume;
pub mod rung;
pub mod sample;
pub mod speed;
pub mod sys;
pub mod train;
