//! STIX 2.1 export of held items, for threat-intelligence platforms.
//!
//! [`bundle`] turns items into one STIX bundle:
//!
//! - an `identity` (class `organization`) for each agency that created or sent an item;
//! - a `report` per item: its title, narrative, kind (as a label), creation time, creator,
//!   TLP marking, and the Entente item id as an external reference;
//! - an `identity` per subject (`individual` for a person, `organization` for an
//!   organisation; vessels and aircraft as `unknown`, with the subject type kept in the
//!   custom property `x_entente_subject_type`), with its aliases and identifiers;
//! - a `location` per country named by a subject, and a `located-at` relationship from
//!   the subject to it;
//! - the TLP `marking-definition`s used. STIX 2.1 defines TLP 1.0 markings only, so
//!   CLEAR is exported as TLP:WHITE, and AMBER+STRICT as TLP:AMBER together with a
//!   statement marking that says "TLP:AMBER+STRICT".
//!
//! Ids are UUIDv5 names derived from the item, agency, subject or country, so exporting an
//! item twice gives the same objects and a platform that imports both keeps one copy.

use serde_json::{Value, json};

use crate::{pb, report, view};

/// The namespace of the UUIDv5 names of exported objects.
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6e, 0x74, 0x65, 0x6e, 0x74, 0x65, 0x2d, 0x73, 0x74, 0x69, 0x78, 0x2d, 0x76, 0x31, 0x00, 0x01,
]);

/// The predefined STIX 2.1 TLP marking definitions (id, colour).
const TLP_WHITE: (&str, &str) = (
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    "white",
);
const TLP_GREEN: (&str, &str) = (
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    "green",
);
const TLP_AMBER: (&str, &str) = (
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    "amber",
);
const TLP_RED: (&str, &str) = (
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
    "red",
);

/// When the predefined TLP markings were created, as the STIX 2.1 standard gives it.
const TLP_CREATED: &str = "2017-01-20T00:00:00.000Z";

fn id(kind: &str, name: &str) -> String {
    format!(
        "{kind}--{}",
        uuid::Uuid::new_v5(&NAMESPACE, format!("{kind}:{name}").as_bytes())
    )
}

fn timestamp(ms: i64) -> String {
    let millis = ms.rem_euclid(1000);
    format!(
        "{}.{millis:03}Z",
        view::time_rfc3339(ms).trim_end_matches('Z')
    )
}

/// The bundle of `items` (each as `report show` gets it), created at `now_ms`.
pub fn bundle(items: &[pb::GetItemResponse], now_ms: i64) -> Value {
    let mut objects: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut push = |objects: &mut Vec<Value>, object: Value| {
        let key = object["id"].as_str().unwrap_or_default().to_owned();
        if seen.insert(key) {
            objects.push(object);
        }
    };
    let created = timestamp(now_ms);
    for item in items {
        let (Some(summary), Some(r)) = (&item.summary, &item.report) else {
            continue;
        };
        let item_time = timestamp(summary.created_at_ms);
        let creator = id("identity", &summary.originator);
        for agency in [&summary.originator, &summary.sender] {
            push(
                &mut objects,
                json!({
                    "type": "identity", "spec_version": "2.1",
                    "id": id("identity", agency), "created": created, "modified": created,
                    "name": agency, "identity_class": "organization",
                    "sectors": ["government-national"],
                }),
            );
        }
        let mut markings: Vec<String> = Vec::new();
        let tlp = r
            .handling
            .as_ref()
            .and_then(|h| pb::TlpLevel::try_from(h.tlp).ok())
            .unwrap_or_default();
        let colour = match tlp {
            pb::TlpLevel::Clear => Some(TLP_WHITE),
            pb::TlpLevel::Green => Some(TLP_GREEN),
            pb::TlpLevel::Amber | pb::TlpLevel::AmberStrict => Some(TLP_AMBER),
            pb::TlpLevel::Red => Some(TLP_RED),
            pb::TlpLevel::Unspecified => None,
        };
        if let Some((marking, colour)) = colour {
            markings.push(marking.to_owned());
            push(
                &mut objects,
                json!({
                    "type": "marking-definition", "spec_version": "2.1", "id": marking,
                    "created": TLP_CREATED, "definition_type": "tlp",
                    "name": format!("TLP:{}", colour.to_ascii_uppercase()),
                    "definition": {"tlp": colour},
                }),
            );
        }
        if tlp == pb::TlpLevel::AmberStrict {
            let strict = id("marking-definition", "TLP:AMBER+STRICT");
            markings.push(strict.clone());
            push(
                &mut objects,
                json!({
                    "type": "marking-definition", "spec_version": "2.1", "id": strict,
                    "created": TLP_CREATED, "definition_type": "statement",
                    "name": "TLP:AMBER+STRICT",
                    "definition": {"statement": "TLP:AMBER+STRICT: the recipient's organisation only"},
                }),
            );
        }
        let mut refs: Vec<String> = Vec::new();
        for (n, s) in r.subjects.iter().enumerate() {
            let subject_type = pb::SubjectType::try_from(s.r#type).unwrap_or_default();
            let class = match subject_type {
                pb::SubjectType::Person => "individual",
                pb::SubjectType::Organisation => "organization",
                _ => "unknown",
            };
            let subject_id = id(
                "identity",
                &format!("{}/{}/{n}", summary.item_id, summary.sender),
            );
            let identifiers: Vec<Value> = s
                .identifiers
                .iter()
                .map(|i| json!({"scheme": i.scheme, "value": i.value, "country": i.country}))
                .collect();
            let mut subject = json!({
                "type": "identity", "spec_version": "2.1", "id": subject_id,
                "created": item_time, "modified": item_time, "created_by_ref": creator,
                "name": s.name, "identity_class": class,
                "x_entente_subject_type": crate::screen::subject_type_name(subject_type),
                "object_marking_refs": markings,
            });
            if let Some(obj) = subject.as_object_mut() {
                if !s.aliases.is_empty() {
                    obj.insert("x_entente_aliases".into(), json!(s.aliases));
                }
                if !identifiers.is_empty() {
                    obj.insert("x_entente_identifiers".into(), json!(identifiers));
                }
                if !s.role.is_empty() {
                    obj.insert("roles".into(), json!([s.role]));
                }
            }
            push(&mut objects, subject);
            refs.push(subject_id.clone());
            for country in &s.countries {
                let country = country.to_ascii_uppercase();
                let location = id("location", &country);
                push(
                    &mut objects,
                    json!({
                        "type": "location", "spec_version": "2.1", "id": location,
                        "created": created, "modified": created, "country": country,
                    }),
                );
                let relationship = id("relationship", &format!("{subject_id}/{location}"));
                push(
                    &mut objects,
                    json!({
                        "type": "relationship", "spec_version": "2.1", "id": relationship,
                        "created": item_time, "modified": item_time, "created_by_ref": creator,
                        "relationship_type": "located-at",
                        "source_ref": subject_id, "target_ref": location,
                        "object_marking_refs": markings,
                    }),
                );
                refs.push(location);
                refs.push(relationship);
            }
        }
        refs.dedup();
        if refs.is_empty() {
            // A STIX report must refer to at least one object.
            refs.push(creator.clone());
        }
        let kind = report::kind_name(pb::ItemKind::try_from(r.kind).unwrap_or_default());
        let mut description = r.narrative.clone();
        for g in &r.goods {
            description.push_str(&format!(
                "\nGoods: {} (HS {}, control entry {})",
                g.description,
                if g.hs_code.is_empty() {
                    "-"
                } else {
                    &g.hs_code
                },
                if g.control_entry.is_empty() {
                    "-"
                } else {
                    &g.control_entry
                },
            ));
        }
        if !r.red_flags.is_empty() {
            description.push_str(&format!("\nRed flags: {}", r.red_flags.join("; ")));
        }
        push(
            &mut objects,
            json!({
                "type": "report", "spec_version": "2.1",
                "id": id("report", &format!("{}/{}", summary.item_id, summary.sender)),
                "created": item_time, "modified": item_time, "published": item_time,
                "created_by_ref": creator,
                "name": if r.title.is_empty() { kind.to_owned() } else { r.title.clone() },
                "description": description.trim(),
                "report_types": ["threat-report"],
                "labels": [kind],
                "object_refs": refs,
                "object_marking_refs": markings,
                "external_references": [{
                    "source_name": "entente",
                    "external_id": summary.item_id,
                    "description": format!("sent by {}", summary.sender),
                }],
            }),
        );
    }
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v5(&NAMESPACE, format!("bundle:{now_ms}:{}", objects.len()).as_bytes())),
        "objects": objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(tlp: pb::TlpLevel) -> pb::GetItemResponse {
        pb::GetItemResponse {
            summary: Some(pb::ItemSummary {
                item_id: "01JEXAMPLE0000000000000000".into(),
                sender: "US-BIS".into(),
                originator: "US-BIS".into(),
                created_at_ms: 1_764_000_000_123,
                ..Default::default()
            }),
            report: Some(pb::Report {
                kind: pb::ItemKind::DenialNotification as i32,
                title: "Denied: frequency converters".into(),
                subjects: vec![pb::Subject {
                    r#type: pb::SubjectType::Organisation as i32,
                    name: "Example Trading LLC".into(),
                    countries: vec!["ae".into()],
                    ..Default::default()
                }],
                handling: Some(pb::Handling {
                    tlp: tlp as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn of_type<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
        bundle["objects"]
            .as_array()
            .map(|o| o.iter().filter(|x| x["type"] == kind).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_report_refers_to_its_subject_location_and_marking() {
        let b = bundle(&[item(pb::TlpLevel::Amber)], 1_764_000_000_000);
        let report = of_type(&b, "report")[0];
        let subject = of_type(&b, "identity")
            .into_iter()
            .find(|i| i["name"] == "Example Trading LLC")
            .cloned()
            .unwrap();
        assert_eq!(subject["identity_class"], "organization");
        let refs = report["object_refs"].as_array().unwrap();
        assert!(refs.contains(&subject["id"]));
        assert_eq!(of_type(&b, "location")[0]["country"], "AE");
        assert_eq!(
            of_type(&b, "relationship")[0]["relationship_type"],
            "located-at"
        );
        assert_eq!(report["object_marking_refs"], json!([TLP_AMBER.0]));
        assert_eq!(report["created"], "2025-11-24T16:00:00.123Z");
        assert_eq!(report["labels"], json!(["denial-notification"]));
    }

    #[test]
    fn ids_are_the_same_on_each_export_and_amber_strict_adds_a_statement() {
        let a = bundle(&[item(pb::TlpLevel::AmberStrict)], 1);
        let b = bundle(&[item(pb::TlpLevel::AmberStrict)], 2);
        assert_eq!(
            of_type(&a, "report")[0]["id"],
            of_type(&b, "report")[0]["id"]
        );
        let markings = of_type(&a, "marking-definition");
        assert_eq!(markings.len(), 2);
        assert!(markings.iter().any(|m| m["name"] == "TLP:AMBER+STRICT"));
    }
}
