package webhook

import "github.com/pushwire/pushwire/annotations"

// Annotation webhooks, Sockudo's shapes: annotation_created {name, channel, message_serial,
// annotation_serial, annotation_type} and annotation_deleted, which adds
// deleted_annotation_serial (annotation_serial is then the delete's own serial).

const (
	typeAnnotationCreated = "annotation_created"
	typeAnnotationDeleted = "annotation_deleted"
)

var _ annotations.Observer = (*Sender)(nil)

// AnnotationCreated implements annotations.Observer: annotation_created.
func (s *Sender) AnnotationCreated(appID, channel, messageSerial, annotationSerial, annotationType string) {
	s.emit(appID, typeAnnotationCreated, channel, func() []byte {
		return encode(struct {
			Name             string `json:"name"`
			Channel          string `json:"channel"`
			MessageSerial    string `json:"message_serial"`
			AnnotationSerial string `json:"annotation_serial"`
			AnnotationType   string `json:"annotation_type"`
		}{typeAnnotationCreated, channel, messageSerial, annotationSerial, annotationType})
	})
}

// AnnotationDeleted implements annotations.Observer: annotation_deleted.
func (s *Sender) AnnotationDeleted(appID, channel, messageSerial, annotationSerial, deletedSerial, annotationType string) {
	s.emit(appID, typeAnnotationDeleted, channel, func() []byte {
		return encode(struct {
			Name                    string `json:"name"`
			Channel                 string `json:"channel"`
			MessageSerial           string `json:"message_serial"`
			AnnotationSerial        string `json:"annotation_serial"`
			DeletedAnnotationSerial string `json:"deleted_annotation_serial"`
			AnnotationType          string `json:"annotation_type"`
		}{typeAnnotationDeleted, channel, messageSerial, annotationSerial, deletedSerial, annotationType})
	})
}
