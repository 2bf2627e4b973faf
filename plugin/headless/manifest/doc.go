// Package manifest reads Kubernetes Services, EndpointSlices and Pods from
// YAML or JSON files, as `kubectl get svc,endpointslices,pods -A -o yaml`
// writes them or as people write them by hand, and derives EndpointSlices
// from Pods the way Kubernetes' EndpointSlice controller would.
//
// Decoding is strict, as the API server's is. Errors name the file and the
// line of the object or field at fault.
package manifest
