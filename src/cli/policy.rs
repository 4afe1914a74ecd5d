//! `entente policy check|explain|reload`.

use std::path::Path;

use entente::{
    config::Config,
    node, pb,
    policy::{Decision, ItemFacts},
    report,
};

use super::CliResult;

pub(crate) fn check(config: &Path) -> CliResult {
    let config = Config::load(config)?;
    match node::load_policy(&config) {
        Ok((policy, warnings)) => {
            for w in &warnings {
                println!("warning: {w}");
            }
            let partners = policy.partners();
            let listed = if partners.is_empty() {
                "no partner: nothing is shared or accepted".to_owned()
            } else {
                format!("policies for {}", partners.join(", "))
            };
            println!("{}: valid; {listed}", config.policy.display());
            Ok(())
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            Err(format!("{} error(s) in the sharing policy", errors.0.len()).into())
        }
    }
}

pub(crate) fn explain(
    config: &Path,
    partner: &str,
    origin: Option<&str>,
    file: &Path,
) -> CliResult {
    let config = Config::load(config)?;
    if config.partner(partner).is_none() {
        return Err(format!(
            "{partner} is not a registered partner in {}",
            config.file.display()
        )
        .into());
    }
    let (policy, _) = node::load_policy(&config)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read report file {}: {e}", file.display()))?;
    let report = report::parse_report_json(&text, &file.display().to_string())?;
    let now = entente::now_ms();
    let facts = ItemFacts {
        report: &report,
        origin: origin.unwrap_or(&config.agency),
        created_at_ms: now,
        now_ms: now,
        consented_to: &[],
    };
    println!("partner:  {partner}");
    println!("kind:     {}", report::kind_name(report.kind()));
    match policy.decide(&config.agency, partner, &facts) {
        Decision::Share {
            rule,
            report,
            redactions,
        } => {
            println!("decision: share, by rule `{rule}`");
            println!("changed:  {}", or_none(&redactions.join(", ")));
            println!("{partner} would receive (nothing was sent):");
            println!(
                "{}",
                serde_json::to_string_pretty(&report::report_to_json(&report))?
            );
        }
        Decision::Deny { rule, reason } => {
            let by = rule.map_or_else(String::new, |r| format!(", by rule `{r}`"));
            println!("decision: deny{by}");
            println!("reason:   {reason}");
        }
    }
    Ok(())
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "(nothing)" } else { text }
}

pub(crate) async fn reload(config: &Path) -> CliResult {
    let config = Config::load(config)?;
    let Some(mut client) = super::connect(&config).await? else {
        return Err(format!(
            "no running node for {}: the policy is read when `entente serve` starts",
            config.file.display()
        )
        .into());
    };
    let response = client
        .reload_policy(pb::ReloadPolicyRequest {})
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    for w in &response.warnings {
        println!("warning: {w}");
    }
    println!(
        "policy reloaded: new decisions use {}",
        config.policy.display()
    );
    Ok(())
}
