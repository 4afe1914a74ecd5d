//! Any text read as an analyst's report JSON: a report or an error, never a panic.
//!
//! A report that parses also validates, and its JSON form ([`report::report_to_json`], what
//! `report show` prints) parses back to the same report.

#![no_main]

use entente::report;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Report files are read as UTF-8 text; other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = report::parse_report_json(text, "fuzz") else {
        return;
    };
    report::validate(&parsed, "fuzz").expect("a parsed report validates");
    let shown = report::report_to_json(&parsed).to_string();
    let again = report::parse_report_json(&shown, "fuzz").expect("the JSON form parses");
    assert_eq!(again, parsed, "the JSON form reads back as another report");
});
