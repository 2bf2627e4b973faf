package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Reap ends the pods being deleted on kwok's node, as the kubelet ends
// them once their containers have stopped: a delete with grace period 0
// and the pod's UID as precondition, so a new pod of the same name is
// never touched. kwok's own pod-delete stage deletes by name, and twice
// (the second usually a 404): a StatefulSet's or PetSet's replacement
// made in between was deleted too. Reap runs until ctx ends; its API
// requests carry the user agent ReaperUserAgent.
func Reap(ctx context.Context, config *rest.Config, node string, logf func(string, ...any)) error {
	config = rest.CopyConfig(config)
	config.UserAgent = ReaperUserAgent
	// A namespace of a thousand pets is ended in seconds, as kwok did.
	config.QPS, config.Burst = max(config.QPS, 200), max(config.Burst, 400)
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[dying]())
	defer queue.ShutDown()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}))
	add := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok && p.DeletionTimestamp != nil {
			queue.Add(dying{types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, p.UID})
		}
	}
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    add,
		UpdateFunc: func(_, obj any) { add(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	var workers sync.WaitGroup
	for range reapers {
		workers.Go(func() {
			for {
				d, shutdown := queue.Get()
				if shutdown {
					return
				}
				if err := d.delete(ctx, client); err != nil && ctx.Err() == nil {
					logf("reaper: %v", err)
					queue.AddRateLimited(d)
				} else {
					queue.Forget(d)
				}
				queue.Done(d)
			}
		})
	}
	workers.Wait()
	return nil
}

// reapers is how many deletes Reap has in flight.
const reapers = 4

// ReaperUserAgent is the user agent of Reap's requests.
const ReaperUserAgent = "petset-testbed-reaper"

// dying is one pod, by name and UID, whose deletion was requested.
type dying struct {
	key types.NamespacedName
	uid types.UID
}

// delete removes the pod if it is still the one that was being deleted:
// gone already, or another pod of the name (409), is done.
func (d dying) delete(ctx context.Context, client kubernetes.Interface) error {
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts := *metav1.NewDeleteOptions(0)
	opts.Preconditions = metav1.NewUIDPreconditions(string(d.uid))
	err := client.CoreV1().Pods(d.key.Namespace).Delete(c, d.key.Name, opts)
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("delete pod %s (uid %s): %w", d.key, d.uid, err)
}
