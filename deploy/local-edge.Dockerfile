# dockflare/local-edge: DockFlare's local edge, a cloudflared stand-in that serves a tunnel's ingress
# from the DockFlare Cloudflare emulator on port 8080 (built by deploy/images.sh). Run like cloudflared:
# TUNNEL_TOKEN in the environment, `tunnel --no-autoupdate run`; metrics (/ready) on TUNNEL_METRICS.
FROM scratch
COPY dockflare-local-edge /dockflare-local-edge
EXPOSE 8080 2000
ENTRYPOINT ["/dockflare-local-edge"]
CMD ["tunnel", "--no-autoupdate", "run"]
