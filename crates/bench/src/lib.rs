//! What more than one of the benchmark programs uses: [`figures`], the two-column table of
//! figures they print and the same rows as JSON.

pub mod figures;
