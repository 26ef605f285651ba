//! Credentials without long-lived keys: GitHub's OIDC token exchanged for a role's session
//! (AssumeRoleWithWebIdentity), or a plain AssumeRole from the default chain's credentials.

use crate::error::{Error, Result};
use crate::secrets::{self, Secret};
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::types::Credentials as StsCredentials;
use http_body_util::{BodyExt, Empty};
use std::time::{Duration, SystemTime};

/// The role to assume, and how.
#[derive(Debug, Clone)]
pub struct RoleSettings {
    pub arn: String,
    pub duration: Duration,
    pub session_name: String,
}

/// Where GitHub's OIDC token is to be requested, when the job may request one.
pub struct TokenRequest {
    pub url: String,
    pub bearer: Secret,
}

impl TokenRequest {
    /// ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN, present only with `permissions: id-token: write`.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Option<TokenRequest> {
        let url = var("ACTIONS_ID_TOKEN_REQUEST_URL").filter(|v| !v.is_empty())?;
        let bearer = var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").filter(|v| !v.is_empty())?;
        Some(TokenRequest {
            url,
            bearer: Secret::new(bearer),
        })
    }
}

/// A role session name from the repository and run (`eb-deploy-owner-repo-123`), within STS's
/// 64 characters of `[\w+=,.@-]`.
pub fn session_name(var: &dyn Fn(&str) -> Option<String>) -> String {
    let mut name = String::from("eb-deploy");
    for part in ["GITHUB_REPOSITORY", "GITHUB_RUN_ID"] {
        if let Some(value) = var(part).filter(|v| !v.is_empty()) {
            name.push('-');
            name.push_str(&value);
        }
    }
    if name == "eb-deploy" {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        name.push_str(&format!("-{secs}"));
    }
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

fn credentials_error(message: String) -> Error {
    Error::Credentials { message }
}

/// Assumes `role`: with GitHub's OIDC token when `token` is given, else with the base credentials.
/// Returns a config whose every client uses the role's session.
pub async fn assume_role(
    base: &SdkConfig,
    role: &RoleSettings,
    token: Option<TokenRequest>,
    expects_oidc: bool,
) -> Result<SdkConfig> {
    let sts = aws_sdk_sts::Client::new(base);
    let duration = i32::try_from(role.duration.as_secs()).unwrap_or(i32::MAX);
    let (credentials, how) = match token {
        Some(request) => {
            let web_token = fetch_github_token(&request).await?;
            let out = sts
                .assume_role_with_web_identity()
                .role_arn(&role.arn)
                .role_session_name(&role.session_name)
                .web_identity_token(web_token.expose())
                .duration_seconds(duration)
                .send()
                .await
                .map_err(|err| {
                    sts_error(
                        "AssumeRoleWithWebIdentity",
                        &role.arn,
                        crate::aws::failure(&err),
                        "The role's trust policy must allow this repository: Principal Federated \
                         token.actions.githubusercontent.com, sts:AssumeRoleWithWebIdentity, \
                         aud = sts.amazonaws.com and a sub condition matching repo:OWNER/REPO:*",
                    )
                })?;
            (out.credentials().cloned(), "GitHub OIDC")
        }
        None if expects_oidc => {
            return Err(credentials_error(format!(
                "EB_ROLE_ARN / --role-arn is {} but ACTIONS_ID_TOKEN_REQUEST_URL and \
                 ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: give the job `permissions: id-token: \
                 write` so it can request GitHub's OIDC token",
                role.arn
            )));
        }
        None => {
            let out = sts
                .assume_role()
                .role_arn(&role.arn)
                .role_session_name(&role.session_name)
                .duration_seconds(duration)
                .send()
                .await
                .map_err(|err| {
                    sts_error(
                        "AssumeRole",
                        &role.arn,
                        crate::aws::failure(&err),
                        "The role's trust policy must allow the caller's principal",
                    )
                })?;
            (out.credentials().cloned(), "AssumeRole")
        }
    };
    let credentials =
        credentials.ok_or_else(|| credentials_error("STS answered without credentials".into()))?;
    let session = session_credentials(&credentials);
    tracing::info!(
        "assumed role {} via {how} (session {})",
        role.arn,
        role.session_name
    );
    Ok(base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(session))
        .build())
}

/// A failed STS call, with what the role's trust policy must allow.
fn sts_error(operation: &str, role: &str, f: crate::aws::Failure, hint: &str) -> Error {
    credentials_error(format!(
        "STS {operation} for {role} failed: {}{}. {hint}",
        f.code.map(|c| format!("{c}: ")).unwrap_or_default(),
        f.message
    ))
}

fn session_credentials(c: &StsCredentials) -> Credentials {
    secrets::mask(c.access_key_id());
    secrets::mask(c.secret_access_key());
    secrets::mask(c.session_token());
    let expiry = SystemTime::try_from(*c.expiration()).ok();
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        expiry,
        "eb-deploy-assumed-role",
    )
}

/// `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=sts.amazonaws.com` with the request bearer; the JSON
/// answer's `value` is the token.
async fn fetch_github_token(request: &TokenRequest) -> Result<Secret> {
    let separator = if request.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}audience=sts.amazonaws.com", request.url);
    let fail = |why: String| {
        credentials_error(format!(
            "could not get GitHub's OIDC token from ACTIONS_ID_TOKEN_REQUEST_URL: {why}"
        ))
    };
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(20), http_get(&url, &request.bearer))
            .await
            .map_err(|_| fail("no answer within 20 s".into()))?
            .map_err(|e| fail(secrets::redact(&e)))?;
    if status != 200 {
        return Err(fail(format!(
            "the token endpoint answered HTTP {status}{}",
            if status == 401 || status == 403 {
                " (does the job have `permissions: id-token: write`?)"
            } else {
                ""
            }
        )));
    }
    let value = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("value")?.as_str().map(str::to_string))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| fail("the answer is not JSON with a \"value\" token".into()))?;
    secrets::mask(&value);
    Ok(Secret::new(value))
}

async fn http_get(url: &str, bearer: &Secret) -> std::result::Result<(u16, bytes::Bytes), String> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| format!("no TLS root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<bytes::Bytes>>(https);
    let request = http::Request::get(url)
        .header("authorization", format!("bearer {}", bearer.expose()))
        .header("accept", "application/json; api-version=2.0")
        .header(
            "user-agent",
            concat!("eb-deploy/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| format!("bad request URL: {e}"))?;
    let response = client.request(request).await.map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    })?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_come_from_the_run_and_fit_sts() {
        let vars = |name: &str| match name {
            "GITHUB_REPOSITORY" => Some("octo-org/My Repo!".to_string()),
            "GITHUB_RUN_ID" => Some("123456".to_string()),
            _ => None,
        };
        assert_eq!(session_name(&vars), "eb-deploy-octo-org-My-Repo--123456");
        let long = |name: &str| (name == "GITHUB_REPOSITORY").then(|| "a".repeat(100));
        assert_eq!(session_name(&long).len(), 64);
        assert!(session_name(&|_| None).starts_with("eb-deploy-"));
    }
}
