//! README.md's route and subcommand tables, held to the code: the webhook routes to
//! `lull_ingest::WEBHOOK_ROUTES` (itself held to the `Router` by `ingest/tests/routes.rs`), the
//! ops routes to the ops `Router`'s own `.route(...)` lines and the console's entry route, and
//! the subcommands to clap's. A route or command added without its README line fails here.

use std::collections::BTreeSet;

use clap::CommandFactory;

const README: &str = include_str!("../../README.md");
const OPS_ROUTER: &str = include_str!("../../local/src/ops.rs");
const CONSOLE_ROUTER: &str = include_str!("../../local/src/console/mod.rs");

/// The rows of the README table under `heading` (up to the next heading): their cells.
fn table(heading: &str) -> Vec<Vec<String>> {
    let start = README
        .find(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    README[start + heading.len()..]
        .lines()
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .skip(1) // the header row
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

/// `(METHOD, /path)` of each `.route("/path", get(..).post(..))` in a router's source.
fn routes_in(source: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for chunk in source.split(".route(").skip(1) {
        let Some(path) = chunk.split('"').nth(1) else {
            continue;
        };
        let call = chunk.split(')').next().unwrap_or("");
        for (method, name) in [("GET", "get("), ("POST", "post(")] {
            if call.contains(name) || chunk.split("))").next().unwrap_or("").contains(name) {
                out.insert((method.to_string(), path.to_string()));
            }
        }
    }
    out
}

#[test]
fn the_readme_lists_every_route_the_routers_serve_and_no_other() {
    let listed: BTreeSet<(String, String, String)> = table("### Routes")
        .into_iter()
        .map(|row| {
            let (method, path) = row[1]
                .split_once(' ')
                .unwrap_or_else(|| panic!("not METHOD /path: {:?}", row[1]));
            (row[0].clone(), method.to_string(), path.to_string())
        })
        .collect();
    let mut served: BTreeSet<(String, String, String)> = lull_ingest::WEBHOOK_ROUTES
        .iter()
        .map(|(m, p)| ("webhook".to_string(), m.to_string(), p.to_string()))
        .collect();
    let ops = routes_in(OPS_ROUTER);
    assert!(
        ops.len() >= 5,
        "the ops router's routes were not found: {ops:?}"
    );
    served.extend(ops.into_iter().map(|(m, p)| ("ops".to_string(), m, p)));
    // The console's pages and actions are docs/console.md's; the README names its entry.
    let console = routes_in(CONSOLE_ROUTER);
    assert!(
        console.contains(&("GET".to_string(), "/console".to_string())),
        "{console:?}"
    );
    served.insert(("ops".into(), "GET".into(), "/console".into()));
    assert_eq!(
        listed, served,
        "README.md's ### Routes table vs the routers"
    );
}

#[test]
fn the_readme_lists_every_subcommand_and_no_other() {
    let listed: BTreeSet<String> = table("### Subcommands")
        .into_iter()
        .map(|row| {
            row[0]
                .strip_prefix("lull ")
                .unwrap_or_else(|| panic!("not `lull NAME`: {:?}", row[0]))
                .to_string()
        })
        .collect();
    let commands: BTreeSet<String> = crate::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert_eq!(
        listed, commands,
        "README.md's ### Subcommands table vs clap"
    );
}
