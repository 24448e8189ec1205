//! The AWS deployment, for the `--aws` commands: built only with `--features aws`, so the local
//! server's build does not compile the AWS SDK. Each command keeps its own AWS code (under
//! `#[cfg(feature = "aws")]`) and runs it through [`aws_only!`], which in a build without the
//! feature answers, in one place, how to get it.
//!
//! Imports run one way: the commands use this module; it uses none of them.

/// What an `--aws` command answers in a build without the `aws` feature.
#[cfg_attr(feature = "aws", allow(dead_code))]
pub fn without_aws(command: &str) -> String {
    format!(
        "this lull was built without AWS support; run `cargo run --release -p lull --features \
         aws -- {command} --aws ...`"
    )
}

/// `aws_only!("redrive", work)`: `work` (a `Result<_, String>`) in a build with the `aws`
/// feature; [`without_aws`] as the error in one without (where `work` is not even compiled).
macro_rules! aws_only {
    ($command:literal, $work:expr) => {{
        #[cfg(feature = "aws")]
        let result = $work;
        #[cfg(not(feature = "aws"))]
        let result = Err($crate::aws::without_aws($command));
        result
    }};
}
pub(crate) use aws_only;

/// The deployment's settings for `role`, read from the Lambdas' `LULL_*` variables, and clients
/// with the usual AWS credentials.
#[cfg(feature = "aws")]
pub async fn connect(
    role: lull_aws::Role,
) -> Result<(lull_aws::Settings, lull_aws::AwsClients), String> {
    let settings = lull_aws::Settings::from_env(role).map_err(|e| e.to_string())?;
    Ok((settings, lull_aws::AwsClients::from_env().await))
}
