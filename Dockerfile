# Stockwire: the same locked requirements, settings and commands as `make` and CI.
# Build stage: compile nothing at run time, install exactly the hashes in requirements.lock.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /venv
COPY requirements.lock /tmp/requirements.lock
RUN /venv/bin/pip install --require-hashes -r /tmp/requirements.lock

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 DEBUG=False
RUN useradd --create-home --uid 10001 stockwire
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=stockwire:stockwire . /app
# collectstatic needs settings but no secrets of production; these throwaway values never run.
# The static and media folders belong to the app's user, so the volumes compose mounts there
# (created from these folders) are writable by it.
RUN SECRET_KEY=build-only PAYMENT_WEBHOOK_SECRET=build-only python manage.py collectstatic --noinput \
    && mkdir -p /app/media && chown -R stockwire:stockwire /app/staticfiles /app/media
USER stockwire
EXPOSE 8000
# Graceful: gunicorn finishes in-flight requests on SIGTERM within --graceful-timeout. No access
# log of gunicorn's own: Django's request-id middleware logs each request once, as JSON.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4", \
     "--timeout", "30", "--graceful-timeout", "25"]
