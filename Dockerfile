# eb-deploy as a container image: one static binary, CA certificates, nothing else.
#   docker build -t eb-deploy .
#   docker run --rm -v "$PWD:/workspace" -e EB_APP -e EB_ENV ... eb-deploy
# The build stage compiles a statically linked binary (glibc, +crt-static) for the build platform.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN case "$(uname -m)" in \
      x86_64) target=x86_64-unknown-linux-gnu ;; \
      aarch64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported build platform $(uname -m)" >&2; exit 1 ;; \
    esac \
 && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" cargo build --release --locked --target "$target" \
 && cp "target/$target/release/eb-deploy" /eb-deploy \
 && mkdir -m 1777 /rootfs-tmp

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /rootfs-tmp /tmp
COPY --from=build /eb-deploy /eb-deploy
# Any non-root user: the image has no /etc/passwd, so a numeric id.
USER 65532:65532
WORKDIR /workspace
ENTRYPOINT ["/eb-deploy"]
