//! The cold-start baseline: a bare lambda_http "hello" function (same lambda_http version,
//! features and runtime flavour as the webhook Lambda), measured beside lull's Lambdas by
//! `lull-bench coldstart`.

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
