//! `entente screen`.

use entente::{config::Config, control, node, pb, screen, view};

use super::CliResult;
use crate::ScreenArgs;

pub(crate) async fn run(args: ScreenArgs) -> CliResult {
    let subject_type = match &args.subject_type {
        Some(name) => screen::parse_subject_type(name)? as i32,
        None => pb::SubjectType::Unspecified as i32,
    };
    let request = pb::ScreenRequest {
        name: args.name,
        subject_type,
        country: args.country.unwrap_or_default(),
        limit: args.limit,
        min_score: args.min_score,
    };
    // Checked here as well as by the node, so that a mistyped option is named plainly.
    let query = screen::query(&request)?;
    let config = Config::load(&args.config)?;
    let response = match super::connect(&config).await? {
        Some(mut client) => client
            .screen(request)
            .await
            .map_err(|status| status.message().to_owned())?
            .into_inner(),
        None => {
            let store = control::open_store(&config)?;
            let (index, _) = node::build_index(&store)?;
            control::screen(&store, &request, index.len(), |q| index.search(q))?
        }
    };
    if args.json {
        let json = view::screen_json(&response);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", view::screen_text(&response, query.min_score));
    }
    Ok(())
}
