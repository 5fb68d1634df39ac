# WabSync: a static binary in a minimal, non-root image.
# Not built on the development machines (no Docker engine there); kept
# minimal and plain so that it is obviously right. Build with:
#   docker build -t wabsync .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/wabsync/wabsync.Version=${VERSION}" -o /out/wabsync ./cmd/wabsync

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wabsync /wabsync
# SQLite database and media live here unless WABSYNC_DATABASE_URL points at PostgreSQL.
ENV WABSYNC_DATA_DIR=/data WABSYNC_ADDR=:8080
VOLUME ["/data"]
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/wabsync"]
CMD ["serve"]
