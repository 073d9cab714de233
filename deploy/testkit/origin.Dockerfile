# dockflare-test/origin: an HTTP origin for DockFlare's Docker tests (built by deploy/images.sh).
FROM scratch
COPY dockflare-testkit /dockflare-testkit
EXPOSE 80
ENTRYPOINT ["/dockflare-testkit", "origin"]
