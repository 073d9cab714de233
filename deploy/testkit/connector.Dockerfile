# dockflare-test/connector: a cloudflared stand-in for DockFlare's Docker tests (built by deploy/images.sh).
# Docker appends the container's command to the entrypoint, so the stub sees exactly what the agent ran.
FROM scratch
COPY dockflare-testkit /dockflare-testkit
EXPOSE 2000
ENTRYPOINT ["/dockflare-testkit", "connector-stub"]
CMD ["tunnel", "--no-autoupdate", "run"]
