use super::*;

fn report(
    title: &str,
    subjects: &[(&str, &str)],
    entry: &str,
    hs: &str,
    route: &str,
) -> pb::Report {
    pb::Report {
        kind: pb::ItemKind::SuspiciousTransaction as i32,
        title: title.into(),
        subjects: subjects
            .iter()
            .map(|(name, country)| pb::Subject {
                r#type: pb::SubjectType::Organisation as i32,
                name: (*name).into(),
                countries: vec![(*country).into()],
                ..Default::default()
            })
            .collect(),
        goods: vec![pb::Goods {
            description: "frequency converters".into(),
            hs_code: hs.into(),
            control_entry: entry.into(),
            ..Default::default()
        }],
        route: Some(pb::Route {
            origin: "DE".into(),
            destination: route.into(),
            ..Default::default()
        }),
        narrative: "Shipment rerouted through a free zone.".into(),
        handling: Some(pb::Handling {
            tlp: pb::TlpLevel::Amber as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn key(n: u8, sender: &str) -> Vec<u8> {
    let mut k = vec![0u8; 15];
    k.push(n);
    k.extend_from_slice(sender.as_bytes());
    k
}

/// Five items: 1..=5, from two senders, with different goods and routes.
fn index() -> SearchIndex {
    let mut index = SearchIndex::new();
    let rows = [
        (
            1,
            "US-BIS",
            "Centrifuge parts",
            ("Rosoboronexport", "RU"),
            "3A001.b.2",
            "8543.70",
            "AE",
        ),
        (
            2,
            "DE-BAFA",
            "Drone engines",
            ("Shahed Aviation Industries", "IR"),
            "9A012",
            "8407.10",
            "IR",
        ),
        (
            3,
            "DE-BAFA",
            "Machine tools",
            ("Müller Werkzeugbau GmbH", "DE"),
            "2B001",
            "8458.11",
            "CN",
        ),
        (
            4,
            "US-BIS",
            "Semiconductors",
            ("Shahed Aviation Industry Co", "IR"),
            "3A001.a",
            "8542.31",
            "TR",
        ),
        (
            5,
            "JP-METI",
            "Maraging steel",
            ("Pars Steel Trading", "IR"),
            "1C116",
            "7224.90",
            "AE",
        ),
    ];
    for (n, sender, title, subject, entry, hs, route) in rows {
        let r = report(title, &[subject], entry, hs, route);
        index.insert(&key(n, sender), sender, 1_000 * i64::from(n), &r);
    }
    index
}

fn numbers(page: &Page) -> Vec<u8> {
    page.keys.iter().map(|k| k[15]).collect()
}

fn find(index: &SearchIndex, search: Search) -> Vec<u8> {
    numbers(&index.search(&search).unwrap())
}

#[test]
fn an_empty_search_lists_every_item_newest_first() {
    assert_eq!(find(&index(), Search::default()), [5, 4, 3, 2, 1]);
}

#[test]
fn each_filter_narrows_to_the_items_that_carry_it() {
    let index = index();
    let by = |f: fn(&mut Search)| {
        let mut s = Search::default();
        f(&mut s);
        find(&index, s)
    };
    assert_eq!(by(|s| s.sender = Some("DE-BAFA".into())), [3, 2]);
    assert_eq!(by(|s| s.subject_country = Some("IR".into())), [5, 4, 2]);
    assert_eq!(by(|s| s.route_country = Some("AE".into())), [5, 1]);
    assert_eq!(by(|s| s.route_country = Some("DE".into())), [5, 4, 3, 2, 1]);
    assert_eq!(by(|s| s.control_entry = Some("3a001".into())), [4, 1]);
    assert_eq!(by(|s| s.control_entry = Some("3A001.B.2".into())), [1]);
    assert_eq!(
        by(|s| s.control_entry = Some("3A00".into())),
        Vec::<u8>::new()
    );
    assert_eq!(by(|s| s.hs_prefix = Some("854".into())), [4, 1]);
    assert_eq!(by(|s| s.hs_prefix = Some("8542.3".into())), [4]);
    assert_eq!(by(|s| s.text = Some("STEEL".into())), [5]);
    assert_eq!(by(|s| s.text = Some("free zone".into())), [5, 4, 3, 2, 1]);
    assert_eq!(by(|s| s.text = Some("converters machine".into())), [3]);
    assert_eq!(by(|s| s.tlp = Some(pb::TlpLevel::Amber as i32)).len(), 5);
    assert_eq!(
        by(|s| s.tlp = Some(pb::TlpLevel::Red as i32)),
        Vec::<u8>::new()
    );
    assert_eq!(by(|s| s.received_after_ms = Some(2_000)), [5, 4, 3, 2]);
    assert_eq!(by(|s| s.received_before_ms = Some(2_000)), [1]);
    assert_eq!(
        by(|s| {
            s.subject_country = Some("IR".into());
            s.sender = Some("US-BIS".into());
        }),
        [4]
    );
}

#[test]
fn a_subject_is_found_as_screening_finds_a_name() {
    let index = index();
    let subject = |name: &str| {
        find(
            &index,
            Search {
                subject: Some(name.into()),
                ..Search::default()
            },
        )
    };
    // Legal forms and a small misspelling do not matter; both agencies' items are found.
    assert_eq!(subject("Shahed Aviation Industries"), [4, 2]);
    assert_eq!(subject("Mueller Werkzeugbau"), [3]);
    assert_eq!(subject("Rosoboronexport"), [1]);
    assert!(subject("Completely Unrelated Name").is_empty());
    let matches = index.subjects(&screen::Query::new("shahed aviation"), "JP-METI");
    assert!(
        matches
            .iter()
            .any(|m| m.sender == "DE-BAFA" && m.subject == 0)
    );
    assert!(matches.iter().any(|m| m.sender == "US-BIS"));
    // A sender's own items are left out.
    let others = index.subjects(&screen::Query::new("shahed aviation"), "DE-BAFA");
    assert!(!others.is_empty());
    assert!(others.iter().all(|m| m.sender != "DE-BAFA"));
}

#[test]
fn pages_follow_the_cursor_without_repeating_or_skipping() {
    let mut index = index();
    let mut seen = Vec::new();
    let mut search = Search {
        limit: 2,
        ..Search::default()
    };
    let first = index.search(&search).unwrap();
    seen.extend(numbers(&first));
    // An item stored between pages sorts above the cursor: it does not disturb paging.
    index.insert(
        &key(9, "US-BIS"),
        "US-BIS",
        9_000,
        &report("Late", &[], "", "", ""),
    );
    search.cursor = first.next_cursor;
    loop {
        let page = index.search(&search).unwrap();
        seen.extend(numbers(&page));
        match page.next_cursor {
            Some(c) => search.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, [5, 4, 3, 2, 1]);
}

#[test]
fn a_large_candidate_set_pages_in_the_same_order_as_a_small_one() {
    let mut index = SearchIndex::new();
    let r = report("Bulk", &[], "3A001", "8542", "AE");
    for n in 0..(SORT_LIMIT as usize + 500) {
        let mut k = (n as u128).to_be_bytes().to_vec();
        k.extend_from_slice(b"US-BIS");
        index.insert(&k, "US-BIS", n as i64, &r);
    }
    let search = Search {
        route_country: Some("AE".into()),
        limit: 3,
        ..Search::default()
    };
    let page = index.search(&search).unwrap();
    let last = SORT_LIMIT as u128 + 499;
    let expect: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let mut k = (last - i).to_be_bytes().to_vec();
            k.extend_from_slice(b"US-BIS");
            k
        })
        .collect();
    assert_eq!(page.keys, expect);
    assert!(page.next_cursor.is_some());
}

#[test]
fn indexing_the_same_key_twice_keeps_one_item() {
    let mut index = index();
    index.insert(
        &key(1, "US-BIS"),
        "US-BIS",
        1_000,
        &report("Again", &[], "", "", ""),
    );
    assert_eq!(index.len(), 5);
}

#[test]
fn bad_requests_name_the_parameter() {
    let bad = |f: fn(&mut pb::SearchItemsRequest)| {
        let mut r = pb::SearchItemsRequest::default();
        f(&mut r);
        Search::from_request(&r).unwrap_err().to_string()
    };
    assert!(bad(|r| r.subject_country = "Iran".into()).starts_with("subject_country:"));
    assert!(bad(|r| r.route_country = "1R".into()).starts_with("route_country:"));
    assert!(bad(|r| r.hs_prefix = "85x".into()).starts_with("hs_prefix:"));
    assert!(bad(|r| r.min_score = 1.5).starts_with("min_score:"));
    assert!(bad(|r| r.limit = 5000).starts_with("limit:"));
    assert!(bad(|r| r.text = "a ! ?".into()).starts_with("text:"));
    assert!(
        bad(|r| {
            r.received_after_ms = 10;
            r.received_before_ms = 5;
        })
        .starts_with("received_before:")
    );
    let index = index();
    for cursor in ["not base64!", "AAAA"] {
        let s = Search {
            cursor: Some(cursor.into()),
            ..Search::default()
        };
        assert_eq!(index.search(&s), Err(SearchError::BadCursor));
    }
}
