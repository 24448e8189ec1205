# Builds for the AWS deployment (docs/deploy.md). Everything else is plain cargo.

# SAM's rust-cargolambda builder always runs `cargo lambda build --release` and cannot pass a
# cargo profile, so these variables give that release build the settings of the workspace's
# `lambda` profile ([profile.lambda] in Cargo.toml; tests/infra.rs checks that they agree).
LAMBDA_PROFILE = \
	CARGO_PROFILE_RELEASE_OPT_LEVEL=s \
	CARGO_PROFILE_RELEASE_LTO=fat \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
	CARGO_PROFILE_RELEASE_PANIC=abort \
	CARGO_PROFILE_RELEASE_STRIP=true

.PHONY: sam-build lambda

# `sam build` with the `lambda` profile: the three bootstraps in .aws-sam/build.
sam-build:
	$(LAMBDA_PROFILE) sam build

# The same binaries without SAM: target/lambda/{webhook,flush,sweep}/bootstrap.
lambda:
	cargo lambda build --profile lambda --arm64 -p lull-webhook -p lull-flush -p lull-sweep
