package apiserver

import (
	"reflect"

	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
	generatedopenapi "github.com/michael/k8s-cloud-node-manager/pkg/generated/openapi"
	"github.com/michael/k8s-cloud-node-manager/pkg/registry/node"
)

// The generic installer describes a connecter's request only by its query
// parameters, so the action bodies (RestartOptions, …) would be missing from
// the published OpenAPI. These hooks add each action's options kind and name
// it as the request body of POST nodes/{name}/<action>.

type actionBody struct {
	path   string // the route as published
	name   string // the definition's friendly name
	schema spec.Schema
}

func actionBodies(refPrefix string) []actionBody {
	namer := openapinamer.NewDefinitionNamer(Scheme)
	ref := func(goName string) spec.Ref {
		name, _ := namer.GetDefinitionName(goName)
		return spec.MustCreateRef(refPrefix + name)
	}
	defs := generatedopenapi.GetOpenAPIDefinitions(ref)
	var out []actionBody
	for _, a := range node.Actions {
		kind := reflect.TypeOf(a.NewOptions()).Elem().Name()
		modelName, err := Scheme.ToOpenAPIDefinitionName(infraopsv1.SchemeGroupVersion.WithKind(kind))
		if err != nil {
			continue // not a registered kind: the integration test catches it
		}
		def, ok := defs[modelName]
		if !ok {
			continue // a kind without generated definitions: run make generate
		}
		name, ext := namer.GetDefinitionName(modelName)
		schema := def.Schema
		for k, v := range ext {
			schema.AddExtension(k, v)
		}
		out = append(out, actionBody{
			path:   "/apis/" + infraopsv1.GroupName + "/" + infraopsv1.SchemeGroupVersion.Version + "/nodes/{name}/" + a.Name,
			name:   name,
			schema: schema,
		})
	}
	return out
}

func publishActionOptionsV2(s *spec.Swagger) (*spec.Swagger, error) {
	for _, b := range actionBodies("#/definitions/") {
		item, ok := s.Paths.Paths[b.path]
		if !ok || item.Post == nil {
			continue
		}
		if s.Definitions == nil {
			s.Definitions = spec.Definitions{}
		}
		s.Definitions[b.name] = b.schema
		item.Post.Parameters = append(item.Post.Parameters, spec.Parameter{ParamProps: spec.ParamProps{
			Name: "body", In: "body", Description: "The action's options; optional.", Schema: spec.RefSchema("#/definitions/" + b.name),
		}})
		s.Paths.Paths[b.path] = item
	}
	return s, nil
}

func publishActionOptionsV3(s *spec3.OpenAPI) (*spec3.OpenAPI, error) {
	for _, b := range actionBodies("#/components/schemas/") {
		if s.Paths == nil {
			break
		}
		item, ok := s.Paths.Paths[b.path]
		if !ok || item.Post == nil {
			continue
		}
		if s.Components == nil {
			s.Components = &spec3.Components{}
		}
		if s.Components.Schemas == nil {
			s.Components.Schemas = map[string]*spec.Schema{}
		}
		schema := b.schema
		s.Components.Schemas[b.name] = &schema
		item.Post.RequestBody = &spec3.RequestBody{RequestBodyProps: spec3.RequestBodyProps{
			Description: "The action's options; optional.",
			Content: map[string]*spec3.MediaType{
				"application/json": {MediaTypeProps: spec3.MediaTypeProps{Schema: spec.RefSchema("#/components/schemas/" + b.name)}},
			},
		}}
	}
	return s, nil
}
