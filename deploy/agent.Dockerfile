# dockflare/agent: the DockFlare agent, one static binary in an empty image (built by
# deploy/images.sh). It needs the Docker socket (mount /var/run/docker.sock); it runs as root by
# default so that it can use it — or as any user given the socket's group (README: "Images").
# Its identity (certificate, key) lives in the /data volume. Health and metrics on 9181.
FROM scratch
COPY dockflare-agent /dockflare-agent
COPY data /data
ENV DOCKFLARE_DATA_DIR=/data \
    DOCKFLARE_METRICS_LISTEN=0.0.0.0:9181 \
    DOCKFLARE_LOG_FORMAT=json
VOLUME /data
EXPOSE 9181
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/dockflare-agent", "healthcheck"]
ENTRYPOINT ["/dockflare-agent"]
