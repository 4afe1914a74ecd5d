//! `entente report correct|retract`, `entente consent`, `entente licence` and
//! `entente consultations`: what happens to items after they were sent.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use entente::{config::Config, control, lifecycle, node, pb, report, view};

use super::{CliResult, connect};

/// `entente consent`.
#[derive(Subcommand)]
pub(crate) enum ConsentCommand {
    /// Ask the originator of a held, originator-controlled item for consent to pass it to
    /// a third agency. Once granted, the item is shared with that agency if the sharing
    /// policy allows it.
    Request {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The item id.
        id: String,
        /// The agency to pass it on to.
        #[arg(long = "to", value_name = "AGENCY")]
        third_party: String,
        /// Why, for the originator's operator.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Consent requests asked by this node and asked of it, newest first.
    List {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Grant a consent request asked of this node (as the item's originator). Operator.
    Grant {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The request id (as `consent list` shows it).
        request: String,
        /// A note for the requester.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Refuse a consent request asked of this node. Operator.
    Refuse {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The request id.
        request: String,
        /// Why (required).
        #[arg(long)]
        note: String,
    },
}

/// `entente licence`.
#[derive(Subcommand)]
pub(crate) enum LicenceCommand {
    /// Match a licence application (JSON: reference, parties, goods with control-list
    /// entry, destination) against the denial notifications received in the last three
    /// years, and open a consultation with each agency whose denial it essentially
    /// repeats (same control-list entry, matching consignee or end user).
    Check {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The application file.
        file: PathBuf,
        /// Days the denying agency has to reply (default: `[lifecycle] consultation_days`).
        #[arg(long)]
        deadline_days: Option<u32>,
        /// Show the matches without opening consultations.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record the decision on a checked application. Granting it despite a consultation
    /// sends each denying agency an undercut notice. Operator.
    Decide {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The application's reference.
        reference: String,
        /// The licence is granted.
        #[arg(long, conflicts_with = "refuse", required_unless_present = "refuse")]
        grant: bool,
        /// The licence is refused.
        #[arg(long)]
        refuse: bool,
        /// The grounds.
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// `entente consultations`.
#[derive(clap::Args)]
pub(crate) struct ConsultationsArgs {
    #[command(subcommand)]
    reply: Option<ConsultationsCommand>,
    /// The node's config file.
    #[arg(long, short, env = "ENTENTE_CONFIG")]
    config: Option<PathBuf>,
    /// Show the states as they will be on this day (YYYY-MM-DD, end of day UTC): which
    /// open consultations will be overdue by then.
    #[arg(long, value_name = "DATE")]
    as_of: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `entente consultations reply`.
#[derive(Subcommand)]
pub(crate) enum ConsultationsCommand {
    /// Reply to a consultation opened with this node as the denying agency. Operator.
    Reply {
        /// The node's config file.
        #[arg(long, short, env = "ENTENTE_CONFIG")]
        config: PathBuf,
        /// The consultation id.
        id: String,
        /// This agency objects to the licence being granted.
        #[arg(
            long,
            conflicts_with = "no_objection",
            required_unless_present = "no_objection"
        )]
        object: bool,
        /// This agency does not object.
        #[arg(long)]
        no_objection: bool,
        /// Remarks for the consulting agency.
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// A status from a running node as the error the user sees.
fn shown(status: tonic::Status) -> String {
    control::status_text(&status)
}

pub(crate) async fn correct(config: &Path, id: &str, file: &Path, reason: &str) -> CliResult {
    let config = Config::load(config)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read report file {}: {e}", file.display()))?;
    let report = report::parse_report_json(&text, &file.display().to_string())?;
    // A refused correction names the file whose report was refused.
    let in_file = |e: String| format!("{}: {e}", file.display());
    let done = match connect(&config).await? {
        Some(mut client) => {
            let request = pb::CorrectItemRequest {
                item_id: id.to_owned(),
                report: Some(report),
                reason: reason.to_owned(),
            };
            client
                .correct_item(request)
                .await
                .map_err(|e| in_file(shown(e)))?
                .into_inner()
        }
        None => node::Shared::open(config)?
            .correct(id, report, reason)
            .await
            .map_err(|e| in_file(e.to_string()))?,
    };
    print!("{}", view::lifecycle_text("corrected", &done));
    Ok(())
}

pub(crate) async fn retract(config: &Path, id: &str, reason: &str) -> CliResult {
    let config = Config::load(config)?;
    let done = match connect(&config).await? {
        Some(mut client) => {
            let request = pb::RetractItemRequest {
                item_id: id.to_owned(),
                reason: reason.to_owned(),
            };
            client
                .retract_item(request)
                .await
                .map_err(shown)?
                .into_inner()
        }
        None => node::Shared::open(config)?.retract(id, reason).await?,
    };
    print!("{}", view::lifecycle_text("retracted", &done));
    Ok(())
}

pub(crate) async fn consent(command: ConsentCommand) -> CliResult {
    match command {
        ConsentCommand::Request {
            config,
            id,
            third_party,
            note,
        } => {
            let config = Config::load(&config)?;
            let done = match connect(&config).await? {
                Some(mut client) => {
                    let request = pb::RequestConsentRequest {
                        item_id: id,
                        third_party,
                        note,
                    };
                    client
                        .request_consent(request)
                        .await
                        .map_err(shown)?
                        .into_inner()
                }
                None => {
                    node::Shared::open(config)?
                        .request_consent(&id, &third_party, &note)
                        .await?
                }
            };
            print!(
                "{}",
                view::lifecycle_text("asked for consent: request", &done)
            );
        }
        ConsentCommand::List { config, json } => {
            let config = Config::load(&config)?;
            let found = match connect(&config).await? {
                Some(mut client) => client
                    .list_consents(pb::ListConsentsRequest {})
                    .await
                    .map_err(shown)?
                    .into_inner(),
                None => control::list_consents(&control::open_store(&config)?)?,
            };
            if json {
                let rows: Vec<_> = found.consents.iter().map(view::consent_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", view::consents_text(&found.consents));
            }
        }
        ConsentCommand::Grant {
            config,
            request,
            note,
        } => answer(&config, &request, true, &note).await?,
        ConsentCommand::Refuse {
            config,
            request,
            note,
        } => answer(&config, &request, false, &note).await?,
    }
    Ok(())
}

async fn answer(config: &Path, request: &str, grant: bool, note: &str) -> CliResult {
    let config = Config::load(config)?;
    let done = match connect(&config).await? {
        Some(mut client) => {
            let r = pb::AnswerConsentRequest {
                request_id: request.to_owned(),
                grant,
                note: note.to_owned(),
            };
            client.answer_consent(r).await.map_err(shown)?.into_inner()
        }
        None => {
            node::Shared::open(config)?
                .answer_consent(request, grant, note)
                .await?
        }
    };
    let verb = if grant { "granted" } else { "refused" };
    print!("{}", view::lifecycle_text(verb, &done));
    Ok(())
}

pub(crate) async fn licence(command: LicenceCommand) -> CliResult {
    match command {
        LicenceCommand::Check {
            config,
            file,
            deadline_days,
            dry_run,
            json,
        } => {
            let config = Config::load(&config)?;
            let source = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read application file {source}: {e}"))?;
            // Checked here too, so that a bad file is named before any node is reached.
            let application = lifecycle::parse_application(&text, &source)?;
            let deadline_days = deadline_days.unwrap_or(0);
            if deadline_days > 365 {
                return Err("--deadline-days: at most 365".into());
            }
            let found = match connect(&config).await? {
                Some(mut client) => {
                    let request = pb::CheckLicenceRequest {
                        application_json: text,
                        source,
                        deadline_days,
                        dry_run,
                    };
                    client
                        .check_licence(request)
                        .await
                        .map_err(shown)?
                        .into_inner()
                }
                None => {
                    node::Shared::open(config)?
                        .check_licence(&application, deadline_days, dry_run)
                        .await?
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&view::licence_check_json(&found))?
                );
            } else {
                print!("{}", view::licence_check_text(&found, dry_run));
            }
        }
        LicenceCommand::Decide {
            config,
            reference,
            grant,
            refuse: _,
            note,
        } => {
            let config = Config::load(&config)?;
            let done = match connect(&config).await? {
                Some(mut client) => {
                    let request = pb::DecideLicenceRequest {
                        reference,
                        grant,
                        note,
                    };
                    client
                        .decide_licence(request)
                        .await
                        .map_err(shown)?
                        .into_inner()
                }
                None => {
                    node::Shared::open(config)?
                        .decide_licence(&reference, grant, &note)
                        .await?
                }
            };
            let decision = if grant { "granted" } else { "refused" };
            println!("application {}: {decision}", done.reference);
            for (i, k) in done.consultations.iter().enumerate() {
                match done.undercut_notices.get(i) {
                    Some(n) => println!(
                        "  consultation {} with {}: undercut notice {n} queued",
                        k.id, k.denying_agency
                    ),
                    None => println!(
                        "  consultation {} with {}: {}",
                        k.id, k.denying_agency, k.state
                    ),
                }
            }
        }
    }
    Ok(())
}

pub(crate) async fn consultations(args: ConsultationsArgs) -> CliResult {
    if let Some(ConsultationsCommand::Reply {
        config,
        id,
        object,
        no_objection: _,
        note,
    }) = args.reply
    {
        let config = Config::load(&config)?;
        let done = match connect(&config).await? {
            Some(mut client) => {
                let request = pb::ReplyConsultationRequest {
                    consultation_id: id,
                    objects: object,
                    note,
                };
                client
                    .reply_consultation(request)
                    .await
                    .map_err(shown)?
                    .into_inner()
            }
            None => {
                node::Shared::open(config)?
                    .reply_consultation(&id, object, &note)
                    .await?
            }
        };
        print!("{}", view::lifecycle_text("replied to consultation", &done));
        return Ok(());
    }
    let config = args
        .config
        .ok_or("--config FILE (or ENTENTE_CONFIG) is needed")?;
    let config = Config::load(&config)?;
    let request = pb::ListConsultationsRequest {
        as_of_ms: match &args.as_of {
            Some(day) => end_of_day_ms(day)?,
            None => 0,
        },
    };
    let found = match connect(&config).await? {
        Some(mut client) => client
            .list_consultations(request)
            .await
            .map_err(shown)?
            .into_inner(),
        None => control::list_consultations(&control::open_store(&config)?, &request)?,
    };
    if args.json {
        let rows: Vec<_> = found
            .consultations
            .iter()
            .map(view::consultation_json)
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", view::consultations_text(&found.consultations));
    }
    Ok(())
}

/// The last millisecond of day `day` (YYYY-MM-DD), UTC.
fn end_of_day_ms(day: &str) -> Result<i64, String> {
    let bad = || format!("--as-of {day:?}: expected a date as YYYY-MM-DD");
    let format = time::format_description::parse("[year]-[month]-[day]").map_err(|_| bad())?;
    let date = time::Date::parse(day, &format).map_err(|_| bad())?;
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000 + 24 * 3600 * 1000 - 1)
}
