use super::*;

const SDN: &str = "US-TREAS/sdn";
const DPL: &str = "US-BIS/dpl";

fn entry(id: &str, kind: pb::SubjectType, name: &str, aliases: &[&str]) -> pb::WatchlistEntry {
    pb::WatchlistEntry {
        id: id.to_string(),
        r#type: kind as i32,
        name: name.to_string(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

fn person(id: &str, name: &str) -> pb::WatchlistEntry {
    entry(id, pb::SubjectType::Person, name, &[])
}

fn company(id: &str, name: &str) -> pb::WatchlistEntry {
    entry(id, pb::SubjectType::Organisation, name, &[])
}

fn index(entries: &[pb::WatchlistEntry]) -> ScreeningIndex {
    let mut index = ScreeningIndex::new();
    for e in entries {
        index.upsert(SDN, e);
    }
    index
}

fn ids(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.entry_id.as_str()).collect()
}

fn search(index: &ScreeningIndex, name: &str) -> Vec<Hit> {
    index.search(&Query::new(name))
}

/// Searches, and checks that the index finds what scoring every name finds.
fn search_all(index: &ScreeningIndex, name: &str) -> Vec<Hit> {
    let hits = index.search(&Query::new(name));
    assert_eq!(hits, index.search_exhaustive(&Query::new(name)), "{name}");
    hits
}

/// The first hit for `query` is entry `id`, and its reasons include `reason`.
fn assert_top(index: &ScreeningIndex, query: &str, id: &str, reason: &str) {
    let hits = search_all(index, query);
    assert_eq!(
        hits.first().map(|h| h.entry_id.as_str()),
        Some(id),
        "{query}: {hits:#?}"
    );
    assert!(
        hits[0].why.iter().any(|w| w.contains(reason)),
        "{query}: no reason {reason:?} in {:?}",
        hits[0].why
    );
}

#[test]
fn case_accents_and_punctuation_do_not_matter() {
    let index = index(&[
        person("1", "MÜLLER, Hans-Jürgen"),
        person("2", "MILLER, Hank"),
    ]);
    assert_top(&index, "muller hans jurgen", "1", "transliterated");
    assert_top(
        &index,
        "Mueller, Hans Juergen",
        "1",
        "token match: 'mueller'~'muller'",
    );
    assert_eq!(
        search(&index, "HANS-JÜRGEN MÜLLER")[0].score,
        1.0 - score::REORDERED
    );
}

#[test]
fn other_scripts_match_their_transliteration() {
    let index = index(&[person("1", "PUTIN, Vladimir Vladimirovich")]);
    assert_top(&index, "Путин Владимир Владимирович", "1", "transliterated");
}

#[test]
fn word_order_is_ignored() {
    let index = index(&[person("1", "John Smith"), person("2", "Jane Smythe")]);
    assert_top(&index, "Smith John", "1", "word order ignored");
    assert_top(&index, "SMITH, John", "1", "word order ignored");
}

#[test]
fn legal_forms_are_ignored_and_said_so() {
    let index = index(&[
        company("1", "ROSOBORONEXPORT OAO"),
        company("2", "Acme Trading L.L.C."),
    ]);
    assert_top(&index, "Rosoboronexport", "1", "legal form 'OAO' ignored");
    assert_top(
        &index,
        "ACME TRADING GmbH",
        "2",
        "legal form 'GMBH' ignored",
    );
    assert_eq!(search(&index, "Acme Trading Co., Ltd.")[0].score, 1.0);
}

#[test]
fn initials_match_the_names_they_begin() {
    let index = index(&[person("1", "John Smith"), person("2", "Paul Smith")]);
    assert_top(&index, "J. Smith", "1", "initial 'J' matched 'JOHN'");
    let index = super::tests::index(&[person("3", "SMITH, J.")]);
    assert_top(&index, "John Smith", "3", "'JOHN' matched initial 'J'");
}

#[test]
fn an_initial_picks_out_its_name_among_many_sharing_the_other_tokens() {
    let mut people: Vec<_> = (0..500)
        .map(|i| person(&format!("p{i}"), &format!("P{i:03} Smith")))
        .collect();
    people.push(person("john", "John Smith"));
    let index = index(&people);
    let hits = search(&index, "J. Smith");
    assert_eq!(
        hits.first().map(|h| h.entry_id.as_str()),
        Some("john"),
        "{hits:#?}"
    );
}

#[test]
fn aliases_are_searched_and_marked() {
    let index = index(&[entry(
        "1",
        pb::SubjectType::Organisation,
        "BANCO NACIONAL DE CUBA",
        &["NATIONAL BANK OF CUBA", "BNC"],
    )]);
    let hits = search(&index, "National Bank of Cuba");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].matched_name, "NATIONAL BANK OF CUBA");
    assert_eq!(hits[0].primary_name, "BANCO NACIONAL DE CUBA");
    assert_eq!(hits[0].why[0], "alias");
    assert_top(&index, "BNC", "1", "alias");
}

#[test]
fn exact_ranks_above_alias_above_fuzzy() {
    let index = index(&[
        person("fuzzy", "Jon Smith"),
        entry(
            "alias",
            pb::SubjectType::Person,
            "Robert Jones",
            &["John Smith"],
        ),
        person("exact", "John Smith"),
    ]);
    let hits = search(&index, "John Smith");
    assert_eq!(ids(&hits), ["exact", "alias", "fuzzy"]);
    assert_eq!(hits[0].score, 1.0);
    assert!(hits[0].score > hits[1].score && hits[1].score > hits[2].score);
    assert!(
        hits[2]
            .why
            .iter()
            .any(|w| w.starts_with("token match: 'john'~'jon'"))
    );
}

#[test]
fn fuzzy_spellings_are_found() {
    let index = index(&[
        person("1", "Ahmed Hassan Al-Rashid"),
        person("2", "Peter Brown"),
    ]);
    let hits = search(&index, "Ahmad Hasan al Rashid");
    assert_eq!(ids(&hits), ["1"]);
    assert!(
        hits[0].score > 0.9 && hits[0].score < 1.0,
        "{}",
        hits[0].score
    );
}

#[test]
fn filters_by_type_and_country() {
    let mut index = ScreeningIndex::new();
    let mut ship = entry("ship", pb::SubjectType::Vessel, "ATLANTIC STAR", &[]);
    ship.countries = vec!["IR".into()];
    let mut firm = company("firm", "Atlantic Star Shipping");
    firm.countries = vec!["ae".into(), " IR ".into()];
    let mut other = company("other", "Atlantic Star Ltd");
    other.countries = vec!["GB".into()];
    let unknown = entry(
        "unknown",
        pb::SubjectType::Unspecified,
        "Atlantic Star",
        &[],
    );
    for e in [&ship, &firm, &other, &unknown] {
        index.upsert(SDN, e);
    }
    let run = |subject_type, country: Option<&str>| {
        let query = Query {
            subject_type,
            country: country.map(str::to_string),
            ..Query::new("Atlantic Star")
        };
        let mut found = ids(&index.search(&query))
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>();
        assert_eq!(
            index.search_exhaustive(&query).len(),
            found.len(),
            "{subject_type:?} {country:?}"
        );
        found.sort();
        found
    };
    assert_eq!(run(None, None), ["firm", "other", "ship", "unknown"]);
    assert_eq!(
        run(Some(pb::SubjectType::Vessel), None),
        ["ship", "unknown"]
    );
    assert_eq!(
        run(Some(pb::SubjectType::Organisation), Some("ir")),
        ["firm", "unknown"]
    );
    assert_eq!(run(None, Some("AE")), ["firm", "unknown"]);
    assert_eq!(run(None, Some("KP")), ["unknown"]);
    assert_eq!(run(Some(pb::SubjectType::Unspecified), None).len(), 4);
}

#[test]
fn upsert_replaces_and_remove_removes() {
    let mut index = index(&[person("1", "John Smith"), person("2", "Paul Jones")]);
    assert_eq!(index.len(), 2);
    index.upsert(SDN, &person("1", "Jonathan Smythe"));
    assert_eq!(index.len(), 2);
    assert!(
        index
            .search_exhaustive(&Query::new("John Smith"))
            .iter()
            .all(|h| h.score < 1.0)
    );
    assert_eq!(ids(&search(&index, "Jonathan Smythe")), ["1"]);

    index.remove(SDN, "1");
    assert_eq!(index.len(), 1);
    assert!(search(&index, "Jonathan Smythe").is_empty());
    index.remove(SDN, "1");
    index.remove("no/such-list", "2");
    assert_eq!(index.len(), 1);

    // A freed slot is reused without stale postings.
    index.upsert(SDN, &person("3", "Maria Garcia"));
    assert_eq!(ids(&search(&index, "Maria Garcia")), ["3"]);
    assert_eq!(index.name_count(), 2);
}

#[test]
fn the_same_id_in_two_lists_is_two_entries() {
    let mut index = ScreeningIndex::new();
    index.upsert(SDN, &person("7", "John Smith"));
    index.upsert(DPL, &person("7", "John Smith"));
    let hits = search(&index, "John Smith");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].list, DPL, "ties are ordered by list name");
    index.remove_list(SDN);
    assert_eq!(index.len(), 1);
    assert_eq!(search(&index, "John Smith")[0].list, DPL);
    index.remove_list(SDN);
    index.remove_list("unknown");
    assert_eq!(index.len(), 1);
}

#[test]
fn limit_and_threshold_are_honoured() {
    let people: Vec<_> = (0..30)
        .map(|i| person(&i.to_string(), "John Smith"))
        .collect();
    let index = index(&people);
    assert_eq!(search(&index, "John Smith").len(), DEFAULT_LIMIT);
    let q = Query {
        limit: 3,
        ..Query::new("John Smith")
    };
    assert_eq!(index.search(&q).len(), 3);
    let q = Query {
        limit: 0,
        ..Query::new("John Smith")
    };
    assert!(index.search(&q).is_empty());
    let q = Query {
        min_score: 0.99,
        ..Query::new("Jon Smith")
    };
    assert!(index.search(&q).is_empty());
    let q = Query {
        min_score: f64::NAN,
        ..Query::new("John Smith")
    };
    assert_eq!(index.search(&q).len(), DEFAULT_LIMIT);
}

#[test]
fn odd_input_does_not_panic() {
    let long = "ab".repeat(5_000);
    let spaced = "ab ".repeat(3_400);
    let odd = [
        "",
        " ",
        ".,;:!?-",
        "🦄",
        "🦄 🔥",
        &long,
        &spaced,
        "\u{0}\u{7f}",
        "x",
        "a b c",
    ];
    let mut index = ScreeningIndex::new();
    for (i, name) in odd.iter().enumerate() {
        index.upsert(
            SDN,
            &entry(&i.to_string(), pb::SubjectType::Unspecified, name, &[name]),
        );
    }
    index.upsert(SDN, &entry("", pb::SubjectType::Person, "", &[]));
    index.upsert(
        SDN,
        &pb::WatchlistEntry {
            r#type: 99,
            ..person("bad-type", "Bad Type")
        },
    );
    index.upsert(SDN, &person("john", "John Smith"));
    for name in odd {
        search(&index, name);
    }
    assert!(search(&index, &format!("John Smith {long}")).len() <= DEFAULT_LIMIT);
    assert_eq!(ids(&search(&index, "Bad Type")), ["bad-type"]);
    assert!(search(&index, "🦄").is_empty());
    assert_eq!(search(&index, &long)[0].score, 1.0);
}

#[test]
fn empty_index_finds_nothing() {
    let index = ScreeningIndex::new();
    assert!(index.is_empty());
    assert!(search(&index, "John Smith").is_empty());
}
