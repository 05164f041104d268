# p2pzmq: the p2p-network command in an image, for Compose, Kubernetes or any container launcher.
#
#   docker build -t p2pzmq .
#   docker run --rm --network host p2pzmq run -n 16 --seed 1
#
# BASE may be any image with python3 (>= 3.11) and its venv module: python:3.11-slim by default, or e.g. a Debian
# bookworm made with mmdebstrap and `docker import` where no registry is reachable. The project goes into a venv,
# so pip works on Debian's externally-managed python as well.
#
# pip reaches its index during the build. Behind a mirror or a TLS-intercepting proxy, give the build what pip uses
# on the host (see `pip config list`): --build-arg PIP_INDEX_URL=... (and PIP_EXTRA_INDEX_URL) and the proxy's CA
# bundle as a BuildKit secret, --secret id=pip-cert,src=/etc/ssl/certs/ca-certificates.crt, which is used for the
# install only and never stored in the image.
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ENV VIRTUAL_ENV=/opt/p2pzmq PATH=/opt/p2pzmq/bin:$PATH PYTHONDONTWRITEBYTECODE=1

COPY setup.cfg setup.py README.md /tmp/p2pzmq/
COPY p2pzmq /tmp/p2pzmq/p2pzmq
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && python3 -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir --disable-pip-version-check --use-pep517 /tmp/p2pzmq \
    && rm -rf /tmp/p2pzmq \
    && useradd --uid 10001 --user-group --create-home --home-dir /home/p2p p2p

USER p2p
WORKDIR /home/p2p
ENTRYPOINT ["p2p-network"]
CMD ["--help"]
