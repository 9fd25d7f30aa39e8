# The Tact application image: the `tact` command, used by every app service in
# docker-compose.yml (migrate, web, console, worker, beat).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Runs as an unprivileged user. Keys are never baked in: they come in at run
# time as a secret (TACT_KEYRING_FILE), and .dockerignore keeps var/ out.
RUN groupadd --system --gid 10001 tact \
    && useradd --system --uid 10001 --gid tact --home-dir /home/tact --create-home \
       --shell /usr/sbin/nologin tact

WORKDIR /app
COPY . /app
RUN pip install . \
    && install -d -m 0700 -o tact -g tact /app/var \
    && chown -R tact:tact /app/templates

# The log (and a service's own local files) go to /app/var, the settings' default var_dir,
# private to the tact user.
# The templates are read from /app/templates (TACT_TEMPLATES_DIR in docker-compose.yml: the
# installed package's default would be inside site-packages, where there are none), which
# the console's template editor writes: so it belongs to the tact user.
EXPOSE 8000

USER tact
ENTRYPOINT ["tact"]
CMD ["--help"]
