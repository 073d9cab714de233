# dockflare/master: the DockFlare master, one static binary in an empty image (built by
# deploy/images.sh). Runs as an unprivileged user (65532); its state — database, PKI, the
# offline emulator's account — lives in the /data volume. gRPC (mutual TLS) on 8443, health and
# metrics on 9180, the offline Cloudflare emulator on 8788.
FROM scratch
COPY dockflare-master /dockflare-master
COPY --chown=65532:65532 data /data
# Where --bootstrap-join-token-file writes (a volume shared with agents: deploy/compose.yaml).
COPY --chown=65532:65532 data /bootstrap
USER 65532:65532
ENV DOCKFLARE_DATA_DIR=/data \
    DOCKFLARE_LISTEN=0.0.0.0:8443 \
    DOCKFLARE_METRICS_LISTEN=0.0.0.0:9180 \
    DOCKFLARE_WEB_LISTEN=0.0.0.0:8090 \
    DOCKFLARE_LOG_FORMAT=json
VOLUME /data
EXPOSE 8443 9180 8090 8788
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/dockflare-master", "healthcheck"]
ENTRYPOINT ["/dockflare-master"]
CMD ["serve"]
