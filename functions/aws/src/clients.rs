//! The AWS SDK clients, built once per process over one HTTPS client (rustls with ring).

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// The DynamoDB and SQS clients lull uses.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

impl AwsClients {
    /// Clients from the environment (region, credentials, `AWS_ENDPOINT_URL`), as in Lambda.
    pub async fn from_env() -> AwsClients {
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .load()
            .await;
        Self::from_sdk_config(&conf)
    }

    /// Clients for an emulator or a local endpoint (moto, LocalStack): dummy static credentials,
    /// region `us-east-1`.
    pub async fn for_endpoint(endpoint_url: &str) -> AwsClients {
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
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
        }
    }
}
