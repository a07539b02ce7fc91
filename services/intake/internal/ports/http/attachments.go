package httpport

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/gabriel-vasile/mimetype"
	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

// MaxFilesPerUpload bounds the files of one upload request.
const MaxFilesPerUpload = 10

type upload struct {
	name string
	data []byte
}

// AddAttachments handles POST /v1/tickets/{id}/attachments: multipart
// parts named "file" (each at most MaxAttachment bytes, at most
// MaxFilesPerUpload), and "internal". The route skips spec validation: the
// body is streamed here part by part so that a large file is refused as
// soon as it passes the limit.
func (s *Server) AddAttachments(c echo.Context, id TicketRef, _ AddAttachmentsParams) error {
	p := principal(c)
	ctx := c.Request().Context()
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return badField("body", "must be multipart/form-data with file parts")
	}
	var (
		files    []upload
		internal bool
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return bodyError(err, "body", "is not a well-formed multipart body")
		}
		switch part.FormName() {
		case "file":
			if len(files) == MaxFilesPerUpload {
				return badField("file", fmt.Sprintf("at most %d files per upload", MaxFilesPerUpload))
			}
			field := fmt.Sprintf("file[%d]", len(files))
			data, err := io.ReadAll(io.LimitReader(part, s.d.MaxAttachment+1))
			if err != nil {
				return bodyError(err, field, "could not be read")
			}
			if int64(len(data)) > s.d.MaxAttachment {
				return httpx.NewProblem(http.StatusRequestEntityTooLarge, "File too large",
					fmt.Sprintf("%s is larger than the limit of %d bytes.", field, s.d.MaxAttachment),
					httpx.FieldError{Field: field, Message: fmt.Sprintf("must be at most %d bytes", s.d.MaxAttachment)})
			}
			files = append(files, upload{name: cleanFilename(part.FileName(), len(files)), data: data})
		case "internal":
			v, _ := io.ReadAll(io.LimitReader(part, 8))
			switch strings.TrimSpace(string(v)) {
			case "true", "1", "on":
				internal = true
			case "false", "0", "", "off":
			default:
				return badField("internal", "must be true or false")
			}
		default:
			return badField(part.FormName(), "is not a field of this upload (file, internal)")
		}
	}
	if len(files) == 0 {
		return badField("file", "at least one file part is required")
	}
	if internal && !p.Can(auth.PermTicketsWork) {
		return httpx.NewProblem(http.StatusForbidden, "Permission denied", "Only agents attach internal files.",
			httpx.FieldError{Field: "internal", Message: "requires tickets:work"})
	}
	r := ref(p, id)
	if !p.Can(auth.PermTicketsWork) {
		r.Requester = p.ID
	}
	if _, err := s.tickets.Visible(ctx, r); err != nil {
		return problem(c, err)
	}
	atts := make([]ticket.Attachment, len(files))
	for i, f := range files {
		typ := mimetype.Detect(f.data).String()
		b, err := s.d.Blobs.PutBlob(ctx, p.Tenant, typ, f.data, s.tickets.Now())
		if err != nil {
			return problem(c, err)
		}
		atts[i] = ticket.Attachment{ID: "at_" + ulid.Make().String(), BlobID: b.ID, Filename: f.name, ContentType: typ,
			SHA256: b.SHA256, Size: b.Size, Internal: internal}
	}
	res, err := s.tickets.Attach(ctx, r, meta(c, p), atts)
	if err != nil {
		return problem(c, err)
	}
	c.Response().Header().Set(HeaderConsistencyToken, fmt.Sprint(res.Sequence))
	c.Response().Header().Set("ETag", etag(int64(res.Ticket.Version)))
	out := AttachmentList{Items: make([]Attachment, len(atts))}
	now := s.tickets.Now().UTC()
	for i, a := range atts {
		out.Items[i] = Attachment{Id: a.ID, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size,
			Sha256: a.SHA256, Internal: a.Internal, CreatedAt: now}
	}
	return c.JSON(http.StatusCreated, out)
}

// bodyError maps a read error of the body: over the body limit is 413.
func bodyError(err error, field, msg string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return httpx.NewProblem(http.StatusRequestEntityTooLarge, "Request too large",
			fmt.Sprintf("The request body is larger than the limit of %d bytes.", mbe.Limit))
	}
	return badField(field, msg)
}

// cleanFilename keeps the base name of what the client sent, without
// control characters, at most 255 characters; "file-N" when nothing is left.
func cleanFilename(name string, i int) string {
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '/' {
			return -1
		}
		return r
	}, name)
	if name == "." || name == "/" || strings.TrimSpace(name) == "" {
		name = fmt.Sprintf("file-%d", i+1)
	}
	if r := []rune(name); len(r) > ticket.MaxFilename {
		name = string(r[:ticket.MaxFilename])
	}
	return name
}

// ListAttachments handles GET /v1/tickets/{id}/attachments.
func (s *Server) ListAttachments(c echo.Context, id TicketRef, p ListAttachmentsParams) error {
	token, err := consistencyToken(p.XConsistencyToken)
	if err != nil {
		return err
	}
	atts, err := s.queries.Attachments(c.Request().Context(), scope(principal(c)), id, token)
	if err != nil {
		return problem(c, err)
	}
	out := AttachmentList{Items: make([]Attachment, len(atts))}
	for i, a := range atts {
		out.Items[i] = Attachment{Id: a.ID, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size,
			Sha256: a.SHA256, Internal: a.Internal, Inline: a.Inline, CommentId: optional(a.CommentID), CreatedAt: a.CreatedAt}
	}
	return c.JSON(http.StatusOK, out)
}

// DownloadAttachment handles GET /v1/tickets/{id}/attachments/{attachment_id}.
// Files are always served as downloads with nosniff: a tenant's upload must
// not run as a page of this origin.
func (s *Server) DownloadAttachment(c echo.Context, id TicketRef, attachmentID Token, p DownloadAttachmentParams) error {
	token, err := consistencyToken(p.XConsistencyToken)
	if err != nil {
		return err
	}
	pr := principal(c)
	a, err := s.queries.Attachment(c.Request().Context(), scope(pr), id, attachmentID, token)
	if err != nil {
		return problem(c, err)
	}
	b, err := s.d.Blobs.Blob(c.Request().Context(), pr.Tenant, a.BlobID)
	if err != nil {
		return problem(c, err)
	}
	h := c.Response().Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename}))
	return c.Blob(http.StatusOK, a.ContentType, b.Data)
}
