//! Country names and codes as the lists write them, to ISO 3166-1 alpha-2.
//!
//! [`code`] accepts an assigned alpha-2 code, or a country name from [`NAMES`]: the ISO
//! short names, and the other spellings that OFAC, the UN and BIS use ("Korea, North",
//! "Iran (Islamic Republic of)", "Burma", "PRC" ...). `XK` (Kosovo) is user-assigned
//! rather than ISO, but every list that names Kosovo uses it, so it is accepted. Regions
//! ("Region: Crimea"), former states ("Netherlands Antilles", "former Soviet Union") and
//! anything else unknown give `None`: the caller keeps such text out of country fields.

use std::{collections::HashMap, sync::LazyLock};

/// Every assigned ISO 3166-1 alpha-2 code, with its English short name, and `XK`.
#[rustfmt::skip]
const CODES: &[(&str, &str)] = &[
    ("AD", "Andorra"), ("AE", "United Arab Emirates"), ("AF", "Afghanistan"),
    ("AG", "Antigua and Barbuda"), ("AI", "Anguilla"), ("AL", "Albania"), ("AM", "Armenia"),
    ("AO", "Angola"), ("AQ", "Antarctica"), ("AR", "Argentina"), ("AS", "American Samoa"),
    ("AT", "Austria"), ("AU", "Australia"), ("AW", "Aruba"), ("AX", "Åland Islands"),
    ("AZ", "Azerbaijan"), ("BA", "Bosnia and Herzegovina"), ("BB", "Barbados"),
    ("BD", "Bangladesh"), ("BE", "Belgium"), ("BF", "Burkina Faso"), ("BG", "Bulgaria"),
    ("BH", "Bahrain"), ("BI", "Burundi"), ("BJ", "Benin"), ("BL", "Saint Barthélemy"),
    ("BM", "Bermuda"), ("BN", "Brunei Darussalam"), ("BO", "Bolivia"),
    ("BQ", "Bonaire, Sint Eustatius and Saba"), ("BR", "Brazil"), ("BS", "Bahamas"),
    ("BT", "Bhutan"), ("BV", "Bouvet Island"), ("BW", "Botswana"), ("BY", "Belarus"),
    ("BZ", "Belize"), ("CA", "Canada"), ("CC", "Cocos (Keeling) Islands"),
    ("CD", "Democratic Republic of the Congo"), ("CF", "Central African Republic"),
    ("CG", "Congo"), ("CH", "Switzerland"), ("CI", "Côte d'Ivoire"), ("CK", "Cook Islands"),
    ("CL", "Chile"), ("CM", "Cameroon"), ("CN", "China"), ("CO", "Colombia"),
    ("CR", "Costa Rica"), ("CU", "Cuba"), ("CV", "Cabo Verde"), ("CW", "Curaçao"),
    ("CX", "Christmas Island"), ("CY", "Cyprus"), ("CZ", "Czechia"), ("DE", "Germany"),
    ("DJ", "Djibouti"), ("DK", "Denmark"), ("DM", "Dominica"), ("DO", "Dominican Republic"),
    ("DZ", "Algeria"), ("EC", "Ecuador"), ("EE", "Estonia"), ("EG", "Egypt"),
    ("EH", "Western Sahara"), ("ER", "Eritrea"), ("ES", "Spain"), ("ET", "Ethiopia"),
    ("FI", "Finland"), ("FJ", "Fiji"), ("FK", "Falkland Islands"), ("FM", "Micronesia"),
    ("FO", "Faroe Islands"), ("FR", "France"), ("GA", "Gabon"), ("GB", "United Kingdom"),
    ("GD", "Grenada"), ("GE", "Georgia"), ("GF", "French Guiana"), ("GG", "Guernsey"),
    ("GH", "Ghana"), ("GI", "Gibraltar"), ("GL", "Greenland"), ("GM", "Gambia"),
    ("GN", "Guinea"), ("GP", "Guadeloupe"), ("GQ", "Equatorial Guinea"), ("GR", "Greece"),
    ("GS", "South Georgia and the South Sandwich Islands"), ("GT", "Guatemala"),
    ("GU", "Guam"), ("GW", "Guinea-Bissau"), ("GY", "Guyana"), ("HK", "Hong Kong"),
    ("HM", "Heard Island and McDonald Islands"), ("HN", "Honduras"), ("HR", "Croatia"),
    ("HT", "Haiti"), ("HU", "Hungary"), ("ID", "Indonesia"), ("IE", "Ireland"),
    ("IL", "Israel"), ("IM", "Isle of Man"), ("IN", "India"),
    ("IO", "British Indian Ocean Territory"), ("IQ", "Iraq"), ("IR", "Iran"),
    ("IS", "Iceland"), ("IT", "Italy"), ("JE", "Jersey"), ("JM", "Jamaica"), ("JO", "Jordan"),
    ("JP", "Japan"), ("KE", "Kenya"), ("KG", "Kyrgyzstan"), ("KH", "Cambodia"),
    ("KI", "Kiribati"), ("KM", "Comoros"), ("KN", "Saint Kitts and Nevis"),
    ("KP", "Democratic People's Republic of Korea"), ("KR", "Republic of Korea"),
    ("KW", "Kuwait"), ("KY", "Cayman Islands"), ("KZ", "Kazakhstan"), ("LA", "Laos"),
    ("LB", "Lebanon"), ("LC", "Saint Lucia"), ("LI", "Liechtenstein"), ("LK", "Sri Lanka"),
    ("LR", "Liberia"), ("LS", "Lesotho"), ("LT", "Lithuania"), ("LU", "Luxembourg"),
    ("LV", "Latvia"), ("LY", "Libya"), ("MA", "Morocco"), ("MC", "Monaco"), ("MD", "Moldova"),
    ("ME", "Montenegro"), ("MF", "Saint Martin"), ("MG", "Madagascar"),
    ("MH", "Marshall Islands"), ("MK", "North Macedonia"), ("ML", "Mali"), ("MM", "Myanmar"),
    ("MN", "Mongolia"), ("MO", "Macao"), ("MP", "Northern Mariana Islands"),
    ("MQ", "Martinique"), ("MR", "Mauritania"), ("MS", "Montserrat"), ("MT", "Malta"),
    ("MU", "Mauritius"), ("MV", "Maldives"), ("MW", "Malawi"), ("MX", "Mexico"),
    ("MY", "Malaysia"), ("MZ", "Mozambique"), ("NA", "Namibia"), ("NC", "New Caledonia"),
    ("NE", "Niger"), ("NF", "Norfolk Island"), ("NG", "Nigeria"), ("NI", "Nicaragua"),
    ("NL", "Netherlands"), ("NO", "Norway"), ("NP", "Nepal"), ("NR", "Nauru"), ("NU", "Niue"),
    ("NZ", "New Zealand"), ("OM", "Oman"), ("PA", "Panama"), ("PE", "Peru"),
    ("PF", "French Polynesia"), ("PG", "Papua New Guinea"), ("PH", "Philippines"),
    ("PK", "Pakistan"), ("PL", "Poland"), ("PM", "Saint Pierre and Miquelon"),
    ("PN", "Pitcairn"), ("PR", "Puerto Rico"), ("PS", "Palestine"), ("PT", "Portugal"),
    ("PW", "Palau"), ("PY", "Paraguay"), ("QA", "Qatar"), ("RE", "Réunion"),
    ("RO", "Romania"), ("RS", "Serbia"), ("RU", "Russian Federation"), ("RW", "Rwanda"),
    ("SA", "Saudi Arabia"), ("SB", "Solomon Islands"), ("SC", "Seychelles"), ("SD", "Sudan"),
    ("SE", "Sweden"), ("SG", "Singapore"), ("SH", "Saint Helena"), ("SI", "Slovenia"),
    ("SJ", "Svalbard and Jan Mayen"), ("SK", "Slovakia"), ("SL", "Sierra Leone"),
    ("SM", "San Marino"), ("SN", "Senegal"), ("SO", "Somalia"), ("SR", "Suriname"),
    ("SS", "South Sudan"), ("ST", "Sao Tome and Principe"), ("SV", "El Salvador"),
    ("SX", "Sint Maarten"), ("SY", "Syrian Arab Republic"), ("SZ", "Eswatini"),
    ("TC", "Turks and Caicos Islands"), ("TD", "Chad"), ("TF", "French Southern Territories"),
    ("TG", "Togo"), ("TH", "Thailand"), ("TJ", "Tajikistan"), ("TK", "Tokelau"),
    ("TL", "Timor-Leste"), ("TM", "Turkmenistan"), ("TN", "Tunisia"), ("TO", "Tonga"),
    ("TR", "Türkiye"), ("TT", "Trinidad and Tobago"), ("TV", "Tuvalu"), ("TW", "Taiwan"),
    ("TZ", "United Republic of Tanzania"), ("UA", "Ukraine"), ("UG", "Uganda"),
    ("UM", "United States Minor Outlying Islands"), ("US", "United States"),
    ("UY", "Uruguay"), ("UZ", "Uzbekistan"), ("VA", "Holy See"),
    ("VC", "Saint Vincent and the Grenadines"), ("VE", "Venezuela"),
    ("VG", "British Virgin Islands"), ("VI", "United States Virgin Islands"),
    ("VN", "Viet Nam"), ("VU", "Vanuatu"), ("WF", "Wallis and Futuna"), ("WS", "Samoa"),
    ("XK", "Kosovo"), ("YE", "Yemen"), ("YT", "Mayotte"), ("ZA", "South Africa"),
    ("ZM", "Zambia"), ("ZW", "Zimbabwe"),
];

/// Other names the published lists use, with their codes.
#[rustfmt::skip]
const NAMES: &[(&str, &str)] = &[
    // OFAC (sdn.csv, add.csv and the consolidated list).
    ("Bahamas, The", "BS"), ("Brunei", "BN"), ("Burma", "MM"),
    ("Congo, Democratic Republic of the", "CD"), ("Congo, Republic of the", "CG"),
    ("Cote d Ivoire", "CI"), ("Cote d'Ivoire", "CI"), ("Czech Republic", "CZ"),
    ("Iran", "IR"), ("Korea, North", "KP"), ("Korea, South", "KR"), ("Macau", "MO"),
    ("Man, Isle of", "IM"), ("North Macedonia, The Republic of", "MK"), ("Palestinian", "PS"),
    ("West Bank", "PS"), ("Russia", "RU"), ("Syria", "SY"), ("Tanzania", "TZ"),
    ("The Gambia", "GM"), ("Turkey", "TR"), ("Vietnam", "VN"),
    ("Virgin Islands, British", "VG"), ("Swaziland", "SZ"), ("Cape Verde", "CV"),
    ("Micronesia, Federated States of", "FM"), ("Sao Tome and Principe", "ST"),
    // The UN Security Council list.
    ("Iran (Islamic Republic of)", "IR"), ("Bolivia (Plurinational State of)", "BO"),
    ("Venezuela (Bolivarian Republic of)", "VE"), ("Republic of Moldova", "MD"),
    ("Lao People's Democratic Republic", "LA"), ("State of Palestine", "PS"),
    ("United Kingdom of Great Britain and Northern Ireland", "GB"),
    ("United States of America", "US"),
    ("China, Hong Kong Special Administrative Region", "HK"),
    ("China, Macao Special Administrative Region", "MO"),
    ("Republic of the Congo", "CG"),
    // Codes that are not ISO but that BIS and trade.gov write.
    ("PRC", "CN"), ("UAE", "AE"), ("UK", "GB"), ("USA", "US"),
];

/// Lower-cased names and codes, to their codes.
static LOOKUP: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for &(code, name) in CODES {
        map.insert(key(code), code);
        map.insert(key(name), code);
    }
    for &(name, code) in NAMES {
        map.insert(key(name), code);
    }
    map
});

/// The lookup key of a name: lower case, inner white space made one space.
fn key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The ISO 3166-1 alpha-2 code of `name_or_code`, or `None` when it is neither an assigned
/// code (in upper case) nor a known country name.
pub(crate) fn code(name_or_code: &str) -> Option<&'static str> {
    let s = name_or_code.trim();
    let is_code_shape = s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase());
    if is_code_shape {
        return CODES.iter().find(|(c, _)| *c == s).map(|(c, _)| *c);
    }
    if s.len() == 2 {
        // "na" (not available) and other two-letter words are not codes.
        return None;
    }
    LOOKUP.get(&key(s)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for (code, _) in CODES {
            assert!(code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(seen.insert(code), "{code} twice");
        }
        assert_eq!(CODES.len(), 250);
        for (_, code) in NAMES {
            assert!(seen.contains(code), "{code} is not in CODES");
        }
    }

    #[test]
    fn names_from_each_publisher_map_to_codes() {
        assert_eq!(code("Korea, North"), Some("KP"));
        assert_eq!(code("Democratic People's Republic of Korea"), Some("KP"));
        assert_eq!(code("IRAN (ISLAMIC REPUBLIC OF)"), Some("IR"));
        assert_eq!(code("Türkiye"), Some("TR"));
        assert_eq!(code("  United   Kingdom "), Some("GB"));
        assert_eq!(code("PRC"), Some("CN"));
        assert_eq!(code("DE"), Some("DE"));
    }

    #[test]
    fn unknown_text_is_not_a_country() {
        for text in [
            "Region: Crimea",
            "Netherlands Antilles",
            "na",
            "NM",
            "AN",
            "undetermined",
        ] {
            assert_eq!(code(text), None, "{text}");
        }
    }
}
