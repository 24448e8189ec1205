//! What `lull tenants show/list` may print of a sink URL: a bot's endpoint often carries its
//! credential in the URL itself (`https://user:token@host/...`, `?token=...`, `?code=...` for
//! Azure Functions, `?sig=...` for a signed URL). The printed URL keeps the scheme, host, path
//! and harmless parameters, and says where a credential was.

/// Query parameter names (compared case-insensitively, `-` and `_` ignored) whose values are
/// credentials.
const SECRET_NAMES: &[&str] = &[
    "token",
    "accesstoken",
    "apikey",
    "key",
    "secret",
    "clientsecret",
    "password",
    "passwd",
    "pass",
    "pwd",
    "auth",
    "authorization",
    "sig",
    "signature",
    "code",
    "credential",
    "credentials",
    "session",
    "xamzsignature",
    "xamzcredential",
    "xamzsecuritytoken",
];

/// Shown instead of a credential.
pub const REDACTED: &str = "REDACTED";

/// `url` with its userinfo, every secret-looking query value and its fragment replaced by
/// [`REDACTED`]. A value is secret-looking by its parameter's name, or by its shape (16 or more
/// characters mixing letters and digits, as generated tokens are).
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, _)) => (r, Some(REDACTED)),
        None => (rest, None),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("{REDACTED}@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{host}{path}");
    if let Some(q) = query {
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if secret_looking(name, value) => {
                    format!("{name}={REDACTED}")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn secret_looking(name: &str, value: &str) -> bool {
    let name: String = name
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let by_name = SECRET_NAMES.contains(&name.as_str())
        || ["token", "secret", "password", "apikey"]
            .iter()
            .any(|s| name.contains(s));
    let by_shape = value.len() >= 16
        && value.chars().any(|c| c.is_ascii_alphabetic())
        && value.chars().any(|c| c.is_ascii_digit());
    by_name || by_shape
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_sink_url_are_redacted() {
        let cases = [
            (
                "https://user:pw@ai.example.com/x",
                "https://REDACTED@ai.example.com/x",
            ),
            (
                "https://bot.example.azurewebsites.net/api/lull?code=abcDEF123&tenant=acme",
                "https://bot.example.azurewebsites.net/api/lull?code=REDACTED&tenant=acme",
            ),
            (
                "https://n8n.example.com/webhook/1?X-Api-Key=k&access_token=t&mode=prod",
                "https://n8n.example.com/webhook/1?X-Api-Key=REDACTED&access_token=REDACTED&mode=prod",
            ),
            (
                "https://hooks.example.com/in?t=9f8e7d6c5b4a39281706",
                "https://hooks.example.com/in?t=REDACTED",
            ),
            ("https://a.example/x#tok", "https://a.example/x#REDACTED"),
            ("https://a.example/x", "https://a.example/x"),
            ("stdout", "stdout"),
        ];
        for (given, shown) in cases {
            assert_eq!(url(given), shown, "{given}");
        }
    }
}
