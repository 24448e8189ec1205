//! The AWS SDK clients, built once per process over one HTTPS client (rustls with ring).

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext, TrustStore};

/// The DynamoDB, SQS and Secrets Manager clients lull uses.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Tenants' gateway and sink secrets.
    pub secrets: aws_sdk_secretsmanager::Client,
}

/// The root certificates of Amazon Trust Services (Amazon Root CA 1-4 and the Starfield
/// Services Root G2 that cross-signs them): every DynamoDB and SQS endpoint, regional, FIPS or
/// VPC interface, chains to one of them.
const AMAZON_ROOTS_PEM: &[u8] = include_bytes!("amazon_roots.pem");

/// Variables that, when set, mean the SDK may talk to something other than AWS's own endpoints
/// (an endpoint override, a config file that may hold one, a trust store of the operator's own,
/// an emulator): the system's roots are kept.
const NOT_AWS_ENDPOINTS: [&str; 8] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_CONFIG_FILE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "LOCALSTACK_HOSTNAME",
];

/// The certificate authorities the AWS clients trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustedRoots {
    /// The system's roots (`/etc/ssl/certs`, `SSL_CERT_FILE`, `SSL_CERT_DIR`).
    System,
    /// Amazon's five roots, compiled in.
    Amazon,
}

impl TrustedRoots {
    /// Amazon's roots inside Lambda talking to AWS's own endpoints in the commercial and
    /// GovCloud partitions, the system's otherwise.
    ///
    /// Why: loading the system roots reads and parses ~150 certificate files, about 2 ms of a
    /// ~5.4 ms process start here: most of the Lambda cold start lull adds. A custom endpoint
    /// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`, or a shared
    /// config file that may set one: LocalStack, a TLS-inspecting proxy), an explicitly
    /// configured trust store (`SSL_CERT_FILE`, `SSL_CERT_DIR`), an emulator
    /// (`LOCALSTACK_HOSTNAME`), a region outside those two partitions (China `cn-*` and the
    /// isolated `*-iso*` regions, whose endpoints need not chain to Amazon Trust Services), or a
    /// machine outside Lambda (the `lull` CLI) keeps the system's.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> TrustedRoots {
        let set = |k: &str| var(k).is_some_and(|v| !v.trim().is_empty());
        let in_lambda = set("AWS_LAMBDA_FUNCTION_NAME");
        let elsewhere = NOT_AWS_ENDPOINTS.iter().any(|k| set(k));
        let region = var("AWS_REGION").unwrap_or_default();
        let ats_partition =
            !region.is_empty() && !region.starts_with("cn-") && !region.contains("-iso");
        if in_lambda && !elsewhere && ats_partition {
            TrustedRoots::Amazon
        } else {
            TrustedRoots::System
        }
    }

    fn trust_store(self) -> TrustStore {
        match self {
            TrustedRoots::System => TrustStore::default(),
            TrustedRoots::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM),
        }
    }
}

fn http_client(roots: TrustedRoots) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    let builder =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring));
    match TlsContext::builder()
        .with_trust_store(roots.trust_store())
        .build()
    {
        Ok(context) => builder.tls_context(context).build_https(),
        // Not reached with aws-smithy-http-client 1.5 (building a context cannot fail); the
        // SDK's default context (system roots) is the safe fallback should that change.
        Err(_) => builder.build_https(),
    }
}

impl AwsClients {
    /// Clients from the environment (region, credentials, `AWS_ENDPOINT_URL`), as in Lambda.
    pub async fn from_env() -> AwsClients {
        let roots = TrustedRoots::from_env(|k| std::env::var(k).ok());
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client(roots))
            .load()
            .await;
        Self::from_sdk_config(&conf)
    }

    /// Clients for an emulator or a local endpoint (moto, LocalStack): dummy static credentials,
    /// region `us-east-1`.
    pub async fn for_endpoint(endpoint_url: &str) -> AwsClients {
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client(TrustedRoots::System))
            .endpoint_url(endpoint_url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
            .load()
            .await;
        Self::from_sdk_config(&conf)
    }

    pub fn from_sdk_config(conf: &aws_config::SdkConfig) -> AwsClients {
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(conf),
            sqs: aws_sdk_sqs::Client::new(conf),
            secrets: aws_sdk_secretsmanager::Client::new(conf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn the_compiled_in_amazon_roots_are_five_valid_trust_anchors() {
        let certs = CertificateDer::pem_slice_iter(AMAZON_ROOTS_PEM)
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        assert_eq!(certs.len(), 5);
        for cert in &certs {
            webpki::anchor_from_trusted_cert(cert).expect("a usable trust anchor");
        }
    }

    fn roots(pairs: &[(&str, &str)]) -> TrustedRoots {
        TrustedRoots::from_env(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn amazon_roots_only_inside_lambda_on_aws_endpoints() {
        let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "lull-flush");
        let region = ("AWS_REGION", "sa-east-1");
        assert_eq!(roots(&[lambda, region]), TrustedRoots::Amazon);
        assert_eq!(
            roots(&[lambda, ("AWS_REGION", "us-gov-west-1")]),
            TrustedRoots::Amazon
        );
        assert_eq!(roots(&[region]), TrustedRoots::System);
        for other_partition in [
            "cn-north-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
        ] {
            assert_eq!(
                roots(&[lambda, ("AWS_REGION", other_partition)]),
                TrustedRoots::System,
                "{other_partition}"
            );
        }
        assert_eq!(roots(&[lambda]), TrustedRoots::System, "no region");
        for endpoint in NOT_AWS_ENDPOINTS {
            let with_endpoint = [lambda, region, (endpoint, "https://localstack:4566")];
            assert_eq!(roots(&with_endpoint), TrustedRoots::System, "{endpoint}");
        }
        assert_eq!(
            roots(&[lambda, region, ("AWS_ENDPOINT_URL", " ")]),
            TrustedRoots::Amazon
        );
    }
}
