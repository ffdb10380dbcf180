//! GitHub's REST API over octocrab: authenticated requests with the API version header, conditional GETs
//! (ETag → 304, which costs no rate limit), `Link` pagination, and the mapping of status codes and
//! rate-limit headers to `ForgeError`s the scheduler can act on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{ETAG, IF_NONE_MATCH, LINK, RETRY_AFTER};
use octocrab::Octocrab;
use serde_json::Value;

use crate::forge::{ForgeError, Secret};

pub const API_VERSION: &str = "2022-11-28";

type Response = http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, octocrab::Error>>;

/// How the provider authenticates.
pub enum Auth {
    /// A classic or fine-grained personal access token.
    Token(Secret),
    /// A GitHub App installation: octocrab signs the JWT and refreshes the installation token before expiry.
    App { app_id: u64, installation_id: u64, private_key_pem: Secret },
}

/// What a conditional GET found: the body, the next page, and whether it was a 304 (which costs no rate
/// limit; the body and next page are then the ones cached with the ETag).
pub struct Got {
    pub body: Value,
    pub next: Option<String>,
    pub not_modified: bool,
}

/// What the last 200 of a URL said.
#[derive(Clone)]
struct Cached {
    etag: String,
    body: Value,
    next: Option<String>,
    /// When a request last used this entry.
    used: std::time::Instant,
}

/// Entries kept at most; past that, those unused for `ETAG_IDLE` go (every run ever polled has its own
/// jobs URL, so without a bound the cache would grow as long as the daemon runs).
const ETAG_ENTRIES: usize = 256;
const ETAG_IDLE: Duration = Duration::from_secs(600);

pub struct Api {
    crab: Octocrab,
    base: String,
    /// `scheme://host[:port]` of `base`.
    origin: String,
    /// The path of `base` without its trailing slash (`/api/v3` for GitHub Enterprise Server, or empty).
    prefix: String,
    forge: String,
    /// URL → what its last 200 said.
    etags: Mutex<HashMap<String, Cached>>,
    /// The `x-ratelimit-*` headers of the last answer that had them.
    rate: Mutex<Option<crate::forge::RateLimit>>,
}

/// The wait a rate-limited answer asks for: `Retry-After` first, then `x-ratelimit-reset` when nothing is
/// left, then a minute for a secondary limit that gives neither (GitHub's documented rules).
pub fn rate_limit_until(status: u16, headers: &HeaderMap, body: &str, now: SystemTime) -> Option<SystemTime> {
    if status != 403 && status != 429 {
        return None;
    }
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(secs) = h(RETRY_AFTER.as_str()).and_then(|v| v.parse::<u64>().ok()) {
        return Some(now + Duration::from_secs(secs));
    }
    if h("x-ratelimit-remaining") == Some("0") {
        let reset = h("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let until = UNIX_EPOCH + Duration::from_secs(reset);
        return Some(until.max(now + Duration::from_secs(1)));
    }
    if status == 429 || body.to_ascii_lowercase().contains("secondary rate limit") {
        return Some(now + Duration::from_secs(60));
    }
    None
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// The request target handed to octocrab for a path or a URL under the API root (`origin` + `prefix`):
/// always a path with the root's prefix, never an absolute URL. octocrab joins it to `api_url`, and it
/// attaches a GitHub App's installation token only to requests without a host of their own (or for
/// api.github.com), so an absolute URL to a GitHub Enterprise Server would go out unauthenticated.
/// `None` for a URL on another host (a `Link` there is refused, not followed).
pub fn request_target(origin: &str, prefix: &str, path_or_url: &str) -> Option<String> {
    if path_or_url.starts_with('/') {
        return Some(if path_or_url.starts_with(&format!("{prefix}/")) || prefix.is_empty() {
            path_or_url.to_string()
        } else {
            format!("{prefix}{path_or_url}")
        });
    }
    let rest = path_or_url.strip_prefix(origin)?;
    match rest {
        "" => Some("/".into()),
        r if r.starts_with('/') => Some(r.to_string()),
        _ => None,
    }
}

fn message_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

impl Api {
    pub fn new(base_url: &str, auth: Auth, forge: &str) -> Result<Self, ForgeError> {
        let cfg_err = |m: String| ForgeError::Config(m, forge.to_string());
        crate::install_tls_provider();
        let base = base_url.trim_end_matches('/').to_string();
        let builder = Octocrab::builder()
            .base_uri(base.as_str())
            .map_err(|e| cfg_err(format!("api_url `{base}`: {e}")))?
            .add_header(http::HeaderName::from_static("x-github-api-version"), API_VERSION.to_string())
            .add_header(http::header::ACCEPT, "application/vnd.github+json".to_string())
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)));
        let crab = match auth {
            Auth::Token(t) => builder.personal_token(t.expose().to_string()).build(),
            Auth::App { app_id, installation_id, private_key_pem } => {
                let key = octocrab::EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
                    .map_err(|e| cfg_err(format!("GitHub App private key: {e}")))?;
                builder.app(app_id.into(), key).build().and_then(|app| app.installation(installation_id.into()))
            }
        }
        .map_err(|e| cfg_err(format!("cannot build the GitHub client: {e}")))?;
        let uri: http::Uri = base.parse().map_err(|e| cfg_err(format!("api_url `{base}`: {e}")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(cfg_err(format!("api_url `{base}` is not an absolute http(s) URL")));
        };
        let origin = format!("{scheme}://{authority}");
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self {
            crab,
            base,
            origin,
            prefix,
            forge: forge.to_string(),
            etags: Mutex::new(HashMap::new()),
            rate: Mutex::new(None),
        })
    }

    fn target(&self, what: &str, path_or_url: &str) -> Result<String, ForgeError> {
        request_target(&self.origin, &self.prefix, path_or_url).ok_or_else(|| ForgeError::BadAnswer {
            forge: self.forge.clone(),
            what: what.to_string(),
            message: format!("a link outside {}: {path_or_url}", self.base),
        })
    }

    /// An error octocrab returned instead of a response. A GitHub error there comes from octocrab's own
    /// request for an App installation token, and is classified like any answer (a refused JWT is an
    /// auth error); anything else is a transport failure.
    fn transport(&self, what: &str, e: octocrab::Error) -> ForgeError {
        if let octocrab::Error::GitHub { source, .. } = &e {
            let headers = source.headers.clone().unwrap_or_default();
            let body = serde_json::json!({ "message": source.message }).to_string();
            let what = format!("{what} (GitHub App installation token)");
            return self.classify(&what, source.status_code.as_u16(), &headers, &body);
        }
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message = format!("{message}: {c}");
            cause = c.source();
        }
        ForgeError::Transport { forge: self.forge.clone(), what: what.to_string(), message }
    }

    fn classify(&self, what: &str, status: u16, headers: &HeaderMap, body: &str) -> ForgeError {
        let forge = self.forge.clone();
        if let Some(until) = rate_limit_until(status, headers, body, SystemTime::now()) {
            return ForgeError::RateLimited { forge, until };
        }
        let message = message_of(body);
        match status {
            401 => ForgeError::Auth { forge, status, message },
            403 => {
                let need = headers.get("x-accepted-github-permissions").and_then(|v| v.to_str().ok());
                let message = match need {
                    Some(p) => format!("{message} (needs {p})"),
                    None => message,
                };
                ForgeError::Permission { forge, status, message }
            }
            404 => ForgeError::NotFound { forge, what: what.to_string() },
            500..=599 => ForgeError::Server { forge, what: what.to_string(), status },
            _ => ForgeError::Rejected { forge, what: what.to_string(), status, message },
        }
    }

    /// What GitHub last said about the rate limit.
    pub fn rate_limit(&self) -> Option<crate::forge::RateLimit> {
        self.rate.lock().ok().and_then(|r| *r)
    }

    async fn read(&self, what: &str, r: Response) -> Result<(u16, HeaderMap, String), ForgeError> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
        if let (Some(remaining), Some(reset)) = (h("x-ratelimit-remaining"), h("x-ratelimit-reset"))
            && let Ok(mut r) = self.rate.lock()
        {
            let reset = UNIX_EPOCH + Duration::from_secs(reset.max(0) as u64);
            *r = Some(crate::forge::RateLimit { remaining, reset });
        }
        let text = self.crab.body_to_string(r).await.map_err(|e| self.transport(what, e))?;
        Ok((status, headers, text))
    }

    /// A conditional GET: sends the last ETag of this URL, and on 304 gives the body cached with it.
    pub async fn get(&self, what: &str, path_or_url: &str) -> Result<Got, ForgeError> {
        let url = self.target(what, path_or_url)?;
        let cached = self.etags.lock().ok().and_then(|mut m| {
            m.get_mut(&url).map(|c| {
                c.used = std::time::Instant::now();
                c.clone()
            })
        });
        let mut headers = HeaderMap::new();
        if let Some(c) = &cached
            && let Ok(v) = c.etag.parse()
        {
            headers.insert(IF_NONE_MATCH, v);
        }
        let r = self.crab._get_with_headers(url.as_str(), Some(headers)).await.map_err(|e| self.transport(what, e))?;
        let (status, headers, text) = self.read(what, r).await?;
        match status {
            304 => match cached {
                Some(c) => Ok(Got { body: c.body, next: c.next, not_modified: true }),
                None => Err(ForgeError::BadAnswer {
                    forge: self.forge.clone(),
                    what: what.to_string(),
                    message: "304 for a request that was not conditional".into(),
                }),
            },
            200 => {
                let body: Value = serde_json::from_str(&text).map_err(|e| ForgeError::BadAnswer {
                    forge: self.forge.clone(),
                    what: what.to_string(),
                    message: format!("not JSON: {e}"),
                })?;
                let next = next_link(&headers);
                if let Some(etag) = headers.get(ETAG).and_then(|v| v.to_str().ok())
                    && let Ok(mut m) = self.etags.lock()
                {
                    if m.len() >= ETAG_ENTRIES {
                        m.retain(|_, c| c.used.elapsed() < ETAG_IDLE);
                    }
                    let used = std::time::Instant::now();
                    m.insert(url, Cached { etag: etag.to_string(), body: body.clone(), next: next.clone(), used });
                }
                Ok(Got { body, next, not_modified: false })
            }
            s => Err(self.classify(what, s, &headers, &text)),
        }
    }

    /// A plain GET, answered as it comes (status, headers, body): for checks that read the status.
    pub async fn probe(&self, what: &str, path: &str) -> Result<(u16, HeaderMap, String), ForgeError> {
        let url = self.target(what, path)?;
        let r = self.crab._get_with_headers(url.as_str(), None).await.map_err(|e| self.transport(what, e))?;
        self.read(what, r).await
    }

    pub async fn post(&self, what: &str, path: &str, body: &Value) -> Result<Value, ForgeError> {
        let url = self.target(what, path)?;
        let r = self.crab._post(url.as_str(), Some(body)).await.map_err(|e| self.transport(what, e))?;
        let (status, headers, text) = self.read(what, r).await?;
        if !(200..300).contains(&status) {
            return Err(self.classify(what, status, &headers, &text));
        }
        serde_json::from_str(&text).map_err(|e| ForgeError::BadAnswer {
            forge: self.forge.clone(),
            what: what.to_string(),
            message: format!("not JSON: {e}"),
        })
    }

    /// DELETE; 404 counts as done.
    pub async fn delete(&self, what: &str, path: &str) -> Result<(), ForgeError> {
        let url = self.target(what, path)?;
        let r = self.crab._delete(url.as_str(), None::<&()>).await.map_err(|e| self.transport(what, e))?;
        let (status, headers, text) = self.read(what, r).await?;
        match status {
            200..=299 | 404 => Ok(()),
            s => Err(self.classify(what, s, &headers, &text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn rate_limit_rules() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let reset = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1000120")]);
        assert_eq!(rate_limit_until(403, &reset, "", now), Some(UNIX_EPOCH + Duration::from_secs(1_000_120)));
        let retry = headers(&[("retry-after", "30"), ("x-ratelimit-remaining", "0")]);
        assert_eq!(rate_limit_until(429, &retry, "", now), Some(now + Duration::from_secs(30)));
        let secondary = r#"{"message":"You have exceeded a secondary rate limit."}"#;
        assert_eq!(rate_limit_until(403, &headers(&[]), secondary, now), Some(now + Duration::from_secs(60)));
        assert_eq!(rate_limit_until(403, &headers(&[("x-ratelimit-remaining", "12")]), "Must have admin", now), None);
        assert_eq!(rate_limit_until(500, &reset, "", now), None);
        let past = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "10")]);
        assert_eq!(rate_limit_until(403, &past, "", now), Some(now + Duration::from_secs(1)), "a reset in the past");
    }

    #[test]
    fn request_targets_are_paths_under_the_api_root() {
        let t = |o, p, u| request_target(o, p, u);
        assert_eq!(t("https://api.github.com", "", "/repos/o/r").as_deref(), Some("/repos/o/r"));
        assert_eq!(t("https://api.github.com", "", "https://api.github.com/x?page=2").as_deref(), Some("/x?page=2"));
        assert_eq!(t("https://ghe.corp", "/api/v3", "/repos/o/r").as_deref(), Some("/api/v3/repos/o/r"));
        assert_eq!(
            t("https://ghe.corp", "/api/v3", "https://ghe.corp/api/v3/repos/o/r?page=2").as_deref(),
            Some("/api/v3/repos/o/r?page=2")
        );
        assert_eq!(t("http://127.0.0.1:80", "", "http://127.0.0.1:8080/x"), None, "another port");
        assert_eq!(t("https://ghe.corp", "/api/v3", "https://evil.example/api/v3/x"), None);
    }

    #[test]
    fn next_links() {
        let h = headers(&[(
            "link",
            "<https://api.github.com/repos/o/r/actions/runs?page=2>; rel=\"next\", <https://api.github.com/repos/o/r/actions/runs?page=5>; rel=\"last\"",
        )]);
        assert_eq!(next_link(&h).as_deref(), Some("https://api.github.com/repos/o/r/actions/runs?page=2"));
        let last = headers(&[("link", "<https://x/?page=1>; rel=\"prev\", <https://x/?page=1>; rel=\"first\"")]);
        assert_eq!(next_link(&last), None);
    }
}
