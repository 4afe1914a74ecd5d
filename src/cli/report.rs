//! `entente report submit|list|show|share`.

use std::path::Path;

use entente::{config::Config, control, node, pb, report, view};

use super::CliResult;

pub(crate) async fn submit(config: &Path, file: &Path) -> CliResult {
    let config = Config::load(config)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read report file {}: {e}", file.display()))?;
    let report = report::parse_report_json(&text, &file.display().to_string())?;
    let response = match super::connect(&config).await? {
        Some(mut client) => {
            let request = pb::SubmitReportRequest {
                report: Some(report),
            };
            client.submit_report(request).await?.into_inner()
        }
        None => {
            let shared = node::Shared::open(config)?;
            control::submit_response(shared.submit(report).await?)
        }
    };
    println!("submitted {}", response.item_id);
    print!("{}", view::decisions_text(&response.decisions));
    Ok(())
}

pub(crate) async fn list(config: &Path, limit: u32, json: bool) -> CliResult {
    let config = Config::load(config)?;
    let items = match super::connect(&config).await? {
        Some(mut client) => {
            let request = pb::ListItemsRequest { limit };
            client.list_items(request).await?.into_inner().items
        }
        None => {
            let store = control::open_store(&config)?;
            control::record_query(&store, "list", &format!("limit {limit}"))?;
            control::list_items(&store, limit as usize)?
        }
    };
    if json {
        let rows: Vec<_> = items.iter().map(view::summary_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", view::summary_table(&items));
    }
    Ok(())
}

pub(crate) async fn show(config: &Path, id: &str, json: bool) -> CliResult {
    let config = Config::load(config)?;
    let item = match super::connect(&config).await? {
        Some(mut client) => {
            let request = pb::GetItemRequest {
                item_id: id.to_owned(),
            };
            client.get_item(request).await?.into_inner()
        }
        None => {
            let store = control::open_store(&config)?;
            control::record_query(&store, "show", id)?;
            control::get_item(&store, id)?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&view::item_json(&item))?);
    } else {
        print!("{}", view::item_text(&item));
    }
    Ok(())
}

pub(crate) async fn share(config: &Path, id: &str) -> CliResult {
    let config = Config::load(config)?;
    let response = match super::connect(&config).await? {
        Some(mut client) => {
            let request = pb::ShareItemRequest {
                item_id: id.to_owned(),
            };
            client.share_item(request).await?.into_inner()
        }
        None => {
            let shared = node::Shared::open(config)?;
            control::submit_response(shared.share_again(id).await?)
        }
    };
    if response.decisions.is_empty() {
        println!(
            "{} was already sent to every partner it may go to",
            response.item_id
        );
    } else {
        println!("shared {} again", response.item_id);
        print!("{}", view::decisions_text(&response.decisions));
    }
    Ok(())
}
